"""One real Superset 6.1.0 for the session (metadata DB on the session's embedded PostgreSQL), the
stand-in use views in their own database, and the Dagster Superset assets materialized twice."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from cht_assets.bi import DatasetSource, SupersetClient
from cht_assets.bi.dashboard_specs import DashboardSpec, load_dashboards
from cht_assets.bi.database import DatabaseConnection
from cht_assets.defs.resources import PostgresResource
from cht_assets.defs.superset import SupersetResource, build_superset_assets, superset_connection
from cht_assets.servers.superset import DEFAULT_VENV, SupersetServer, admin_credentials, start_superset
from cht_assets.warehouse.roles import DbRoles, PgRole
from tests.conftest import fresh_database
from tests.superset import standin
from tests.superset.browser import Chromium, chromium_binary
from tests.support import dagster as support

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
SOURCES = [DatasetSource(("useviews", view), standin.VIEW_SCHEMA, view) for view in standin.COLUMNS]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "superset: needs the Superset venv (python -m cht_assets.servers.superset install)"
    )


@dataclass(frozen=True)
class Manager:
    """A test manager: how to log in, and which place uuids bound what they see."""

    username: str
    password: str
    places: tuple[str, ...]
    dashboards: tuple[str, ...] | None  # slugs; None = all

    def sees(self, row: dict[str, Any]) -> bool:
        return any(place in (row.get("area_uuids") or []) for place in self.places)


SESSION = uuid.uuid4().hex[:8]
MANAGERS = {
    "north": Manager("mgr_north", f"north-{SESSION}", ("dh-north",), None),
    "stmary": Manager("mgr_stmary", f"stmary-{SESSION}", ("hc-s1",), ("chw-activity", "population")),
    "stmary_a": Manager("mgr_stmary_a", f"stmarya-{SESSION}", ("cl-s1'a",), ("chw-activity",)),
    "nurse": Manager("nurse_kondele", f"nurse-{SESSION}", ("cl-n1a", "cl-n1b"), None),  # via a role
}
NURSE_ROLE = "Kondele nurses"

ACCESS_YAML = {
    "levels": ["district_hospital", "health_center", "clinic"],
    "postgres": {"view_schemas": ["public"], "view_prefixes": ["contactview_", "formview_", "useview_"]},
    "managers": [
        {
            "user": "mgr_north",
            "first_name": "Nora",
            "last_name": "North",
            "password_env": "CHT_TEST_PW_NORTH",
            "places": [{"district_hospital": "North District Hospital"}],
        },
        {
            "user": "mgr_stmary",
            "password_env": "CHT_TEST_PW_STMARY",
            "places": [{"health_center": "St Mary's Health Center"}],
            "dashboards": ["chw-activity", "population"],
        },
        {
            "user": "mgr_stmary_a",
            "password_env": "CHT_TEST_PW_STMARY_A",
            "places": [{"uuid": "cl-s1'a"}],
            "dashboards": ["chw-activity"],
        },
        {"role": NURSE_ROLE, "places": [{"uuid": "cl-n1a"}, {"clinic": "Kondele B"}]},
    ],
}


@pytest.fixture(scope="session")
def superset_venv() -> Path:
    venv = Path(os.environ.get("SUPERSET_VENV") or DEFAULT_VENV)
    if not (venv / "bin" / "superset").exists():
        pytest.skip(f"no Superset venv at {venv}: run `python -m cht_assets.servers.superset install`")
    return venv


@pytest.fixture(scope="session")
def superset_env() -> Iterator[dict[str, str]]:
    """Role names unique to this session (roles are cluster-wide), passwords for the test users."""
    env = {
        "SUPERSET_DB_ROLE": f"cht_superset_{SESSION}",
        "SUPERSET_DB_PASSWORD": f"superset-db-{SESSION}",
        "ANALYST_DB_ROLE": f"cht_analyst_{SESSION}",
        "ANALYST_DB_PASSWORD": f"analyst-db-{SESSION}",
        "CHT_TEST_PW_NORTH": MANAGERS["north"].password,
        "CHT_TEST_PW_STMARY": MANAGERS["stmary"].password,
        "CHT_TEST_PW_STMARY_A": MANAGERS["stmary_a"].password,
        "SUPERSET_DATABASE_NAME": f"CHT analytics {SESSION}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


@pytest.fixture(scope="session")
def superset_metadata_url(superset_venv: Path, embedded_pg_admin_url: str) -> Iterator[str]:
    """Superset's own metadata DB: a database on the session's embedded PostgreSQL."""
    with contextlib.contextmanager(fresh_database)(embedded_pg_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def superset_server(
    superset_venv: Path, superset_metadata_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SupersetServer]:
    home = tmp_path_factory.mktemp("superset-home")
    server = start_superset(home, superset_metadata_url, venv_dir=superset_venv)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def admin(superset_server: SupersetServer) -> Iterator[SupersetClient]:
    user, password = admin_credentials()
    with SupersetClient(superset_server.url, user, password) as client:
        yield client


@dataclass(frozen=True)
class Analytics:
    url: str
    data: standin.StandIn


@pytest.fixture(scope="session")
def analytics(embedded_pg_admin_url: str) -> Iterator[Analytics]:
    with contextlib.contextmanager(fresh_database)(embedded_pg_admin_url) as url:
        data = standin.generate()
        standin.create(url, data)
        yield Analytics(url, data)


@dataclass(frozen=True)
class Provisioning:
    runs: list[dict[dg.AssetKey, dict[str, Any]]]  # materialization metadata per run
    specs: list[DashboardSpec]
    database: DatabaseConnection
    roles: DbRoles
    access_path: Path
    resources: dict[str, Any]


def materialize(assets: list, resources: dict[str, Any], instance: dg.DagsterInstance) -> dict:
    result = support.materialize(assets, resources, instance=instance)
    assert result.success
    return {
        event.asset_key: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }


@contextlib.contextmanager
def standin_kept(request: pytest.FixtureRequest, admin: SupersetClient) -> Iterator[None]:
    """For a module that provisions dashboards of its own: they are keyed by slug, like the
    session's stand-in ones, so the stand-in provisioning (when it was there) is put back after."""
    standin = request.getfixturevalue("provisioned") if admin.find("dashboard", slug="chw-activity") else None
    try:
        yield
    finally:
        if standin is not None:
            assets = build_superset_assets(SOURCES, access_path=standin.access_path)
            with support.dagster_instance() as instance:
                materialize(assets, standin.resources, instance)


@pytest.fixture(scope="session")
def provisioned(
    superset_server: SupersetServer,
    analytics: Analytics,
    superset_env: dict[str, str],
    admin: SupersetClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Provisioning:
    """Every Superset asset materialized twice through Dagster; a user for the role manager."""
    access_path = tmp_path_factory.mktemp("access") / "access.yaml"
    access_path.write_text(yaml.safe_dump(ACCESS_YAML, sort_keys=False))
    assets = build_superset_assets(SOURCES, access_path=access_path)
    resources = {
        "superset": SupersetResource(url=superset_server.url),
        "postgres": PostgresResource(url=analytics.url),
    }
    with support.dagster_instance() as instance:
        runs = [materialize(assets, resources, instance) for _ in range(2)]
    roles = DbRoles(
        PgRole(superset_env["SUPERSET_DB_ROLE"], superset_env["SUPERSET_DB_PASSWORD"]),
        PgRole(superset_env["ANALYST_DB_ROLE"], superset_env["ANALYST_DB_PASSWORD"]),
    )
    # The role manager's members come from elsewhere (SSO in real life): add one by hand.
    role_ids = {role["name"]: role["id"] for role in admin.list_all("security/roles")}
    nurse = MANAGERS["nurse"]
    admin.post(
        "/api/v1/security/users/",
        {
            "username": nurse.username,
            "first_name": "Nurse",
            "last_name": "Kondele",
            "email": "nurse@localhost",
            "active": True,
            "password": nurse.password,
            "roles": [role_ids["Gamma"], role_ids[NURSE_ROLE]],
        },
    )
    return Provisioning(
        runs=runs,
        specs=load_dashboards(),
        database=superset_connection(analytics.url),
        roles=roles,
        access_path=access_path,
        resources=resources,
    )


@pytest.fixture(scope="session")
def manager_clients(
    superset_server: SupersetServer, provisioned: Provisioning
) -> Iterator[dict[str, SupersetClient]]:
    clients = {
        key: SupersetClient(superset_server.url, m.username, m.password) for key, m in MANAGERS.items()
    }
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """Headless Chromium with a profile of its own, one per test module."""
    if chromium_binary() is None:
        pytest.fail("chromium is not installed: apt-get update && apt-get install -y chromium")
    with Chromium(tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium
