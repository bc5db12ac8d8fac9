"""`superset/access.yaml`: which managers exist, and the places each one manages.

A manager is a Superset user (kept in sync from here) or a Superset role whose members are
managed elsewhere (e.g. by SSO). Places are given by uuid, or by name at any level of the
hierarchy; they are resolved to uuids against the data (places.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cht_assets.settings import DEFAULT_ACCESS_FILE
from cht_assets.sqlnames import safe_identifier
from cht_assets.warehouse.roles import FORBIDDEN_SCHEMAS

ACCESS_PATH = DEFAULT_ACCESS_FILE

DEFAULT_LEVELS = ("district_hospital", "health_center", "clinic")
DEFAULT_VIEW_SCHEMAS = ("public",)
DEFAULT_VIEW_PREFIXES = ("contactview_", "formview_", "useview_")

MANAGER_ROLE_PREFIX = "cht_manager_"
RLS_NAME_PREFIX = "cht: "  # the RLS rules this project owns (one per manager)
BUILTIN_SUPERSET_ROLES = frozenset({"Admin", "Alpha", "Gamma", "Public", "sql_lab"})


class AccessError(ValueError):
    """access.yaml is invalid, or a place cannot be resolved, or a role cannot be set up."""


@dataclass(frozen=True)
class PlaceRef:
    """A place by uuid, or by name (optionally at one level of the hierarchy)."""

    uuid: str | None = None
    name: str | None = None
    level: str | None = None

    def describe(self) -> str:
        if self.uuid:
            return f"uuid {self.uuid!r}"
        return f"{self.level or 'place'} {self.name!r}"


@dataclass(frozen=True)
class Manager:
    kind: str  # "user" or "role"
    name: str
    places: tuple[PlaceRef, ...]
    dashboards: tuple[str, ...] | None = None  # slugs; None = every dashboard
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    password_env: str | None = None
    from_cht: bool = False  # a CHT user holding one of `cht_roles` (read from useview_user)

    @property
    def role_name(self) -> str:
        if self.kind == "role":
            return self.name
        return MANAGER_ROLE_PREFIX + safe_identifier(self.name)

    @property
    def rule_name(self) -> str:
        return RLS_NAME_PREFIX + self.role_name


@dataclass(frozen=True)
class ChtRole:
    """A CHT role whose users become managers of the subtree of their facility (off when none)."""

    role: str
    dashboards: tuple[str, ...] | None = None  # slugs; None = every dashboard


@dataclass(frozen=True)
class AccessConfig:
    managers: tuple[Manager, ...] = ()
    levels: tuple[str, ...] = DEFAULT_LEVELS
    view_schemas: tuple[str, ...] = DEFAULT_VIEW_SCHEMAS
    view_prefixes: tuple[str, ...] = DEFAULT_VIEW_PREFIXES
    cht_roles: tuple[ChtRole, ...] = ()


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AccessError(f"{where}: expected a list of strings")
    return tuple(value)


def parse_place(data: Any, levels: Sequence[str], where: str) -> PlaceRef:
    if isinstance(data, str):
        return PlaceRef(name=data)
    if not isinstance(data, Mapping) or len(data) != 1:
        raise AccessError(f"{where}: a place is a name, `{{uuid: ...}}` or `{{<level>: <name>}}`")
    ((key, value),) = data.items()
    if not isinstance(value, str) or not value:
        raise AccessError(f"{where}: the place {key!r} needs a non-empty string")
    if key == "uuid":
        return PlaceRef(uuid=value)
    if key not in levels:
        raise AccessError(f"{where}: {key!r} is neither `uuid` nor a level ({', '.join(levels)})")
    return PlaceRef(name=value, level=key)


def parse_manager(data: Any, levels: Sequence[str], where: str) -> Manager:
    if not isinstance(data, Mapping):
        raise AccessError(f"{where}: a manager is a mapping")
    kinds = [kind for kind in ("user", "role") if data.get(kind)]
    if len(kinds) != 1:
        raise AccessError(f"{where}: give exactly one of `user` or `role`")
    kind = kinds[0]
    name = str(data[kind])
    where = f"{where} ({kind} {name})"
    if kind == "role" and name in BUILTIN_SUPERSET_ROLES:
        raise AccessError(f"{where}: Superset's built-in role {name!r} cannot be a manager role")
    if kind == "role" and name.startswith(MANAGER_ROLE_PREFIX):
        raise AccessError(f"{where}: role names starting with {MANAGER_ROLE_PREFIX!r} are reserved")
    places = tuple(parse_place(p, levels, f"{where} place") for p in data.get("places") or [])
    if not places:
        raise AccessError(f"{where}: a manager needs at least one place")
    dashboards = _strings(data.get("dashboards"), f"{where} dashboards") if "dashboards" in data else None
    return Manager(
        kind=kind,
        name=name,
        places=places,
        dashboards=dashboards,
        first_name=data.get("first_name"),
        last_name=data.get("last_name"),
        email=data.get("email"),
        password_env=data.get("password_env"),
    )


def parse_cht_role(data: Any, where: str) -> ChtRole:
    if isinstance(data, str) and data:
        return ChtRole(data)
    if not isinstance(data, Mapping) or not isinstance(data.get("role"), str) or not data["role"]:
        raise AccessError(f"{where}: a CHT role is a name or `{{role: <name>, dashboards: [...]}}`")
    unknown = sorted(set(data) - {"role", "dashboards"})
    if unknown:
        raise AccessError(f"{where}: unknown key(s) {unknown}")
    dashboards = _strings(data.get("dashboards"), f"{where} dashboards") if "dashboards" in data else None
    return ChtRole(data["role"], dashboards)


def parse_access(data: Any, source: str = "access.yaml") -> AccessConfig:
    data = data or {}
    if not isinstance(data, Mapping):
        raise AccessError(f"{source}: expected a mapping")
    levels = _strings(data.get("levels"), f"{source}: levels") or DEFAULT_LEVELS
    postgres = data.get("postgres") or {}
    schemas = (
        _strings(postgres.get("view_schemas"), f"{source}: postgres.view_schemas") or DEFAULT_VIEW_SCHEMAS
    )
    forbidden = sorted(FORBIDDEN_SCHEMAS & set(schemas))
    if forbidden:
        raise AccessError(f"{source}: postgres.view_schemas must not include {forbidden}")
    prefixes = (
        _strings(postgres.get("view_prefixes"), f"{source}: postgres.view_prefixes") or DEFAULT_VIEW_PREFIXES
    )
    managers = tuple(
        parse_manager(m, levels, f"{source}: manager {i + 1}")
        for i, m in enumerate(data.get("managers") or [])
    )
    roles = [m.role_name for m in managers if m.kind == "role"]
    if len(set(roles)) != len(roles):
        raise AccessError(f"{source}: a role appears twice; list all its places in one entry")
    users = [m.name for m in managers if m.kind == "user"]
    if len(set(users)) != len(users):
        raise AccessError(f"{source}: a user appears twice; list all their places in one entry")
    cht_roles = tuple(
        parse_cht_role(r, f"{source}: cht_roles {i + 1}") for i, r in enumerate(data.get("cht_roles") or [])
    )
    if len({r.role for r in cht_roles}) != len(cht_roles):
        raise AccessError(f"{source}: a CHT role appears twice in cht_roles")
    return AccessConfig(managers, levels, schemas, prefixes, cht_roles)


def load_access(path: Path = ACCESS_PATH) -> AccessConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise AccessError(f"{path.name}: not valid YAML: {error}") from None
    return parse_access(data, path.name)
