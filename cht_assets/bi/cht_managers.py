"""Managers from CHT itself: each CHT user holding one of access.yaml's `cht_roles` (e.g.
`chw_supervisor`) manages the subtree of their facility, read run by run from the use view
`useview_user`. Off when `cht_roles` is empty; skipped (with a warning) when the view is absent.

Such a user is a Superset user like access.yaml's own, marked by the Superset role
`MARKER_ROLE` (no permissions) so that one who leaves (user deleted in CHT, role dropped, no
facility) is found again and disabled. Their password is never set here: a new user gets a
random one that is neither logged nor kept (reset it in Superset, or log in through SSO).
"""

from __future__ import annotations

import dataclasses

import psycopg

from cht_assets.bi.access_config import AccessConfig, ChtRole, Manager, PlaceRef
from cht_assets.sqlnames import quote_qualified

USER_VIEW = "useview_user"
MARKER_ROLE = "CHT role managers"  # held by every Superset user made from a CHT user


def user_view(conn: psycopg.Connection, schemas: tuple[str, ...]) -> str | None:
    """The quoted name of `useview_user` in the first view schema that has it."""
    for schema in schemas:
        relation = quote_qualified(schema, USER_VIEW)
        if conn.execute("SELECT to_regclass(%s)", (relation,)).fetchone()[0] is not None:
            return relation
    return None


def wanted_dashboards(roles: list[str], cht_roles: tuple[ChtRole, ...]) -> tuple[str, ...] | None:
    """The dashboards of the user's managing CHT roles: every one if any role has no list."""
    matched = [r for r in cht_roles if r.role in roles]
    if any(r.dashboards is None for r in matched):
        return None
    return tuple(dict.fromkeys(slug for r in matched for slug in r.dashboards or ()))


def cht_managers(conninfo: str, config: AccessConfig) -> tuple[list[Manager], list[str]]:
    """The managers from CHT users with one of `config.cht_roles`, and warnings."""
    if not config.cht_roles:
        return [], []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        relation = user_view(conn, config.view_schemas)
        if relation is None:
            return [], [f"CHT-role managers skipped: no {USER_VIEW} view in {list(config.view_schemas)}"]
        rows = conn.execute(
            f"SELECT user_name, fullname, email, roles, facility_uuid FROM {relation} "
            "WHERE roles && %s::text[] ORDER BY user_name",
            ([r.role for r in config.cht_roles],),
        ).fetchall()
    own = {m.name for m in config.managers if m.kind == "user"}
    managers, warnings, emails = [], [], set()
    for user_name, fullname, email, roles, facility in rows:
        if not user_name or user_name in own:
            warnings.append(f"CHT user {user_name!r} skipped: access.yaml names a user with that name")
            continue
        if not facility:
            warnings.append(f"CHT user {user_name!r} skipped: no facility")
            continue
        email = email if email and email not in emails else f"{user_name}@localhost"
        emails.add(email)
        managers.append(
            Manager(
                kind="user",
                name=user_name,
                places=(PlaceRef(uuid=facility),),
                dashboards=wanted_dashboards(list(roles), config.cht_roles),
                first_name=fullname or user_name,
                last_name="(CHT)",
                email=email,
                from_cht=True,
            )
        )
    return managers, warnings


def with_cht_managers(conninfo: str, config: AccessConfig) -> tuple[AccessConfig, list[str]]:
    """`config` with the CHT-role managers added to its managers."""
    managers, warnings = cht_managers(conninfo, config)
    return dataclasses.replace(config, managers=config.managers + tuple(managers)), warnings
