"""Managers from CHT itself: CHT users with a role named in access.yaml's `cht_roles` become
Superset users restricted to the subtree of their facility, run by run; never given a password."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from cht_assets.bi.access import AccessReport, provision_access
from cht_assets.bi.access_config import ACCESS_PATH, AccessConfig, AccessError, load_access, parse_access
from cht_assets.bi.cht_managers import MARKER_ROLE, cht_managers
from cht_assets.bi.client import SupersetAPIError, SupersetClient
from cht_assets.servers.demo import demo_password, supervisor_logins
from cht_assets.servers.superset import admin_credentials
from tests.superset.conftest import ACCESS_YAML, MANAGERS, SESSION, SOURCES, Analytics, Manager, Provisioning
from tests.superset.test_access import assert_only_their_area, dataset_id, raw_rows

pytestmark = pytest.mark.superset

SUPERVISOR = "supervisor-south"  # the stand-in's own chw_supervisor, at dh-south
MOVER = f"sup-mover-{SESSION}"
# Untrusted names: quotes, a semicolon, SQL; the facility uuid has a quote too.
HOSTILE = f"o'brien\"; DROP TABLE x;--{SESSION}"
CHT_ACCESS = {**ACCESS_YAML, "cht_roles": [{"role": "chw_supervisor"}, {"role": "x'); --", "dashboards": []}]}


def cht_user(conninfo: str, name: str, facility: str | None, roles: list[str]) -> None:
    """Insert or replace one CHT user in the stand-in's `useview_user` (values bound)."""
    with psycopg.connect(conninfo) as conn:
        conn.execute("DELETE FROM standin.useview_user WHERE user_name = %s", (name,))
        conn.execute(
            "INSERT INTO standin.useview_user (user_name, fullname, email, roles, facility_uuid) "
            "VALUES (%s, %s, %s, %s, %s)",
            (name, f"{name} (full)", f"{name}@example.org", roles, facility),
        )


def drop_user(conninfo: str, name: str) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute("DELETE FROM standin.useview_user WHERE user_name = %s", (name,))


@pytest.fixture(scope="module")
def users_restored(analytics: Analytics) -> Iterator[None]:
    """The stand-in's users as they were, after this module."""
    with psycopg.connect(analytics.url) as conn:
        rows = conn.execute("SELECT * FROM standin.useview_user").fetchall()
        names = [c.name for c in conn.execute("SELECT * FROM standin.useview_user LIMIT 0").description]
    yield
    with psycopg.connect(analytics.url) as conn:
        conn.execute("DELETE FROM standin.useview_user")
        with conn.cursor().copy(f"COPY standin.useview_user ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


@pytest.fixture(scope="module")
def run(
    admin: SupersetClient, analytics: Analytics, provisioned: Provisioning, users_restored: None
) -> Iterator[Any]:
    """Provision access with `cht_roles` on; after the module, with the session's access.yaml."""
    passwords = {key: os.environ.get(key) for key in os.environ if key.startswith("CHT_TEST_PW_")}

    def provision(config: AccessConfig) -> AccessReport:
        return provision_access(
            admin,
            analytics.url,
            config,
            provisioned.database,
            SOURCES,
            provisioned.specs,
            db_roles=provisioned.roles,
            passwords=passwords,
        )

    yield lambda: provision(parse_access(CHT_ACCESS))
    provision(parse_access(ACCESS_YAML))


def superset_user(admin: SupersetClient, name: str) -> dict[str, Any]:
    (user,) = [u for u in admin.list_all("security/users") if u["username"] == name]
    return user


def set_password(admin: SupersetClient, name: str, password: str) -> None:
    """What the user does (a reset in Superset); the pipeline never does it."""
    user = superset_user(admin, name)
    body = {k: user[k] for k in ("first_name", "last_name", "email", "active")}
    admin.put(
        f"/api/v1/security/users/{user['id']}",
        {**body, "roles": [r["id"] for r in user["roles"]], "password": password},
    )


def logs_in(url: str, name: str, password: str) -> bool:
    try:
        SupersetClient(url, name, password).login()
    except SupersetAPIError as error:
        assert error.status == 401, error
        return False
    return True


def as_manager(name: str, places: tuple[str, ...]) -> Manager:
    return Manager(name, f"pw-{name}-{SESSION}", places, None)


def test_supervisors_see_their_area_move_and_leave(
    admin: SupersetClient, analytics: Analytics, provisioned: Provisioning, run: Any
) -> None:
    cht_user(analytics.url, MOVER, "hc-s1", ["chw", "chw_supervisor"])
    cht_user(analytics.url, HOSTILE, "cl-s1'a", ["chw_supervisor"])
    cht_user(analytics.url, f"chw-only-{SESSION}", "dh-north", ["chw"])
    report = run()
    assert not [w for w in report.warnings if "CHT" in w], report.warnings
    created = {u["username"] for u in admin.list_all("security/users")}
    assert {SUPERVISOR, MOVER, HOSTILE} <= created
    assert f"chw-only-{SESSION}" not in created  # no managing role
    url = admin.url
    every = {spec.slug for spec in provisioned.specs}
    for name, places in [(SUPERVISOR, ("dh-south",)), (MOVER, ("hc-s1",)), (HOSTILE, ("cl-s1'a",))]:
        manager = as_manager(name, places)
        set_password(admin, name, manager.password)
        with SupersetClient(url, name, manager.password) as client:
            assert {d["slug"] for d in client.list_all("dashboard")} == every
            assert_only_their_area(manager, client, admin, provisioned, analytics, every)

    # Moved to another facility: the next run shows the new area; the password they set stays.
    cht_user(analytics.url, MOVER, "dh-north", ["chw_supervisor"])
    run()
    mover = as_manager(MOVER, ("dh-north",))
    with SupersetClient(url, MOVER, mover.password) as client:
        assert_only_their_area(mover, client, admin, provisioned, analytics, {"chw-activity"})
        activity = dataset_id(admin, provisioned, "useview_chw_activity")
        rows = raw_rows(client, activity, ["district_hospital_uuid"])
        assert rows and {r["district_hospital_uuid"] for r in rows} == {"dh-north"}

    # Removed: the supervisor role dropped, or the user gone from CHT -> disabled, no access.
    cht_user(analytics.url, MOVER, "dh-north", ["chw"])
    drop_user(analytics.url, HOSTILE)
    report = run()
    for name in (MOVER, HOSTILE):
        user = superset_user(admin, name)
        assert not user["active"]
        assert [r["name"] for r in user["roles"]] == [MARKER_ROLE]
        assert not logs_in(url, name, as_manager(name, ()).password)
        assert f"user {name} (disabled)" in report.removed
    assert superset_user(admin, SUPERVISOR)["active"]
    # Back in CHT with the role: active again, the new area only.
    cht_user(analytics.url, MOVER, "hc-s1", ["chw_supervisor"])
    run()
    assert superset_user(admin, MOVER)["active"]
    with SupersetClient(url, MOVER, mover.password) as client:
        assert_only_their_area(
            as_manager(MOVER, ("hc-s1",)), client, admin, provisioned, analytics, {"chw-activity"}
        )


def test_the_pipeline_never_sets_a_password(
    admin: SupersetClient, analytics: Analytics, superset_metadata_url: str, run: Any
) -> None:
    name = f"sup-new-{SESSION}"
    cht_user(analytics.url, name, "dh-north", ["chw_supervisor"])
    run()
    hashes = password_hashes(superset_metadata_url)
    assert hashes[name] and hashes[name] != hashes[SUPERVISOR]  # random per user
    # Nothing the pipeline knows (its settings, the user's CHT fields, its own credentials) logs in.
    secrets = [
        value for key, value in os.environ.items() if "PASSWORD" in key or key.startswith("CHT_TEST_PW")
    ]
    known = {*secrets, name, f"{name} (full)", f"{name}@example.org", *admin_credentials()}
    assert not any(logs_in(admin.url, name, password) for password in sorted(known) if password)
    run()  # nor does another run touch it
    assert password_hashes(superset_metadata_url)[name] == hashes[name]
    drop_user(analytics.url, name)


def password_hashes(metadata_url: str) -> dict[str, str]:
    with psycopg.connect(metadata_url) as conn:
        return dict(conn.execute("SELECT username, password FROM ab_user").fetchall())


def test_off_by_default_and_absent_view_skipped(analytics: Analytics) -> None:
    assert parse_access({}).cht_roles == ()
    assert cht_managers(analytics.url, parse_access(ACCESS_YAML)) == ([], [])
    config = dataclasses.replace(parse_access(CHT_ACCESS), view_schemas=("no_such_schema",))
    managers, warnings = cht_managers(analytics.url, config)
    assert managers == []
    assert warnings == ["CHT-role managers skipped: no useview_user view in ['no_such_schema']"]


def test_a_cht_user_named_like_an_access_yaml_user_is_skipped(
    analytics: Analytics, users_restored: None
) -> None:
    name = MANAGERS["north"].username
    cht_user(analytics.url, name, "dh-south", ["chw_supervisor"])
    try:
        managers, warnings = cht_managers(analytics.url, parse_access(CHT_ACCESS))
        assert name not in {m.name for m in managers}
        assert any(name in w for w in warnings)
    finally:
        drop_user(analytics.url, name)


@pytest.mark.parametrize(
    ("cht_roles", "message"),
    [
        ([{"dashboards": ["x"]}], "a CHT role is a name"),
        ([{"role": "chw_supervisor", "places": ["x"]}], "unknown key"),
        (["chw_supervisor", {"role": "chw_supervisor"}], "appears twice"),
        ([{"role": "chw_supervisor", "dashboards": "tasks"}], None),
        ([{"role": "chw_supervisor", "dashboards": [1]}], "expected a list of strings"),
    ],
)
def test_cht_roles_are_checked(cht_roles: list, message: str | None) -> None:
    if message is None:
        assert parse_access({"cht_roles": cht_roles}).cht_roles[0].dashboards == ("tasks",)
        return
    with pytest.raises(AccessError, match=message):
        parse_access({"cht_roles": cht_roles})


def test_the_shipped_access_file_keeps_it_off() -> None:
    assert load_access(ACCESS_PATH).cht_roles == ()


def test_the_demo_gives_its_active_supervisors_a_login(
    admin: SupersetClient, analytics: Analytics, run: Any
) -> None:
    gone = f"sup-gone-{SESSION}"
    cht_user(analytics.url, gone, "dh-north", ["chw_supervisor"])
    run()
    drop_user(analytics.url, gone)
    run()
    logins = dict(supervisor_logins(admin))
    assert SUPERVISOR in logins and gone not in logins
    with SupersetClient(admin.url, SUPERVISOR, logins[SUPERVISOR]) as client:
        assert client.list_all("dashboard")
    assert not logs_in(admin.url, gone, demo_password(gone))
