"""Who sees what: `superset/access.yaml` -> Superset roles, users and row-level security, and the
PostgreSQL roles Superset and analysts log in as.

Superset side. Each manager (a user, or a role whose members are managed elsewhere, e.g. by SSO)
manages places at any level of the hierarchy. A manager gets one Superset role holding
`datasource_access` on the datasets of their dashboards, and one "Regular" RLS rule on *every*
dataset with hierarchy columns (not only theirs, so access granted later is filtered too):
`area_uuids @> ARRAY['<place uuid>']::text[]`, ORed over their places. All rules share the group
key `area`, so a user holding two manager roles sees the union. Superset's PUTs replace lists
(RLS tables and roles, role permissions, user roles), so every object is written whole, and only
when it differs. Rules and roles this module no longer wants lose their permissions first, then
go.

PostgreSQL side. Two roles, both read-only (`default_transaction_read_only`, no write grants, no
role memberships): one for Superset's connection and one for analysts. They get USAGE on the
view schemas and SELECT on the view-layer relations only (`contactview_*`, `formview_*`,
`useview_*` by default, plus the published datasets). Never anything in `raw`, and never
`public`'s couch2pg compatibility views, which expose raw docs (`_users` included). Grants are
computed as a diff against the catalog, so a rerun changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from cht_assets.bi.bundle import (
    DashboardSpec,
    DatabaseConnection,
    Dataset,
    dataset_uuid,
    require_one,
)
from cht_assets.bi.client import JsonObject, SupersetClient
from cht_assets.sqlnames import quote_ident, quote_literal, quote_qualified, safe_identifier

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ACCESS_PATH = PROJECT_ROOT / "superset" / "access.yaml"

AREA_COLUMN = "area_uuids"
RLS_GROUP_KEY = "area"
DEFAULT_LEVELS = ("district_hospital", "health_center", "clinic")
DEFAULT_VIEW_SCHEMAS = ("public",)
DEFAULT_VIEW_PREFIXES = ("contactview_", "formview_", "useview_")
FORBIDDEN_SCHEMAS = frozenset({"raw", "pg_catalog", "information_schema"})
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

MANAGER_ROLE_PREFIX = "cht_manager_"
RLS_NAME_PREFIX = "cht: "
MANAGED_NOTE = "Managed by cht_assets from superset/access.yaml; edits are overwritten."
BUILTIN_SUPERSET_ROLES = frozenset({"Admin", "Alpha", "Gamma", "Public", "sql_lab"})
BASE_ROLE = "Gamma"

DEFAULT_SUPERSET_DB_ROLE = "cht_superset"
DEFAULT_ANALYST_DB_ROLE = "cht_analyst"
TEST_ONLY_SUPERSET_DB_PASSWORD = "test-only-superset-db-password"  # noqa: S105 - only when unset


class AccessError(ValueError):
    """access.yaml is invalid, or a place cannot be resolved, or a role cannot be set up."""


# --- access.yaml -------------------------------------------------------------------------------


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

    @property
    def role_name(self) -> str:
        if self.kind == "role":
            return self.name
        return MANAGER_ROLE_PREFIX + safe_identifier(self.name)

    @property
    def rule_name(self) -> str:
        return RLS_NAME_PREFIX + self.role_name


@dataclass(frozen=True)
class AccessConfig:
    managers: tuple[Manager, ...] = ()
    levels: tuple[str, ...] = DEFAULT_LEVELS
    view_schemas: tuple[str, ...] = DEFAULT_VIEW_SCHEMAS
    view_prefixes: tuple[str, ...] = DEFAULT_VIEW_PREFIXES


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
    return AccessConfig(managers, levels, schemas, prefixes)


def load_access(path: Path = ACCESS_PATH) -> AccessConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise AccessError(f"{path.name}: not valid YAML: {error}") from None
    return parse_access(data, path.name)


# --- places ------------------------------------------------------------------------------------


def has_hierarchy(dataset: Dataset) -> bool:
    return AREA_COLUMN in dataset.column_names


def rls_clause(place_uuids: Sequence[str]) -> str:
    """The RLS WHERE clause for a manager of these places (uuids quoted as literals)."""
    if not place_uuids:
        raise AccessError("an RLS clause needs at least one place")
    terms = [f"{AREA_COLUMN} @> ARRAY[{quote_literal(u)}]::text[]" for u in sorted(set(place_uuids))]
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def _name_lookups(datasets: Sequence[Dataset], levels: Sequence[str]) -> list[tuple[str, str]]:
    """(level, SQL) pairs: one query per hierarchy dataset and level it has columns for."""
    lookups = []
    for dataset in datasets:
        for level in levels:
            uuid_col, name_col = f"{level}_uuid", f"{level}_name"
            if {uuid_col, name_col} <= dataset.column_names:
                relation = quote_qualified(dataset.source.schema, dataset.source.relation)
                lookups.append(
                    (
                        level,
                        f"SELECT DISTINCT {quote_ident(uuid_col)} FROM {relation} "
                        f"WHERE {quote_ident(name_col)} = %s AND {quote_ident(uuid_col)} IS NOT NULL",
                    )
                )
    return lookups


def resolve_places(
    conninfo: str, config: AccessConfig, datasets: Sequence[Dataset]
) -> tuple[dict[PlaceRef, str], list[str]]:
    """Each manager's places -> uuids, looked up in the hierarchy columns of the datasets.

    Names must match exactly one uuid. Returns warnings for uuids no row rolls up to (yet)."""
    hierarchy = [d for d in datasets if has_hierarchy(d)]
    lookups = _name_lookups(hierarchy, config.levels)
    resolved: dict[PlaceRef, str] = {}
    warnings: list[str] = []
    refs = {ref for manager in config.managers for ref in manager.places}
    with psycopg.connect(conninfo) as conn:
        for ref in sorted(refs, key=PlaceRef.describe):
            if ref.uuid:
                resolved[ref] = ref.uuid
                if not _has_rows(conn, hierarchy, ref.uuid):
                    warnings.append(f"no rows roll up to place {ref.describe()} yet")
                continue
            found: set[str] = set()
            for level, query in lookups:
                if ref.level in (None, level):
                    found.update(row[0] for row in conn.execute(query, (ref.name,)))
            if len(found) != 1:
                problem = "is not in the hierarchy columns of any dataset" if not found else "is ambiguous"
                raise AccessError(f"place {ref.describe()} {problem}: give its level or its uuid")
            resolved[ref] = found.pop()
    return resolved, warnings


def _has_rows(conn: psycopg.Connection, datasets: Sequence[Dataset], place_uuid: str) -> bool:
    for dataset in datasets:
        relation = quote_qualified(dataset.source.schema, dataset.source.relation)
        query = (
            f"SELECT EXISTS (SELECT 1 FROM {relation} WHERE {quote_ident(AREA_COLUMN)} @> ARRAY[%s]::text[])"
        )
        if conn.execute(query, (place_uuid,)).fetchone()[0]:
            return True
    return False


# --- PostgreSQL roles and grants ---------------------------------------------------------------


@dataclass(frozen=True)
class PgRole:
    name: str
    password: str | None = field(default=None, repr=False)  # None: NOLOGIN (a group role)


@dataclass(frozen=True)
class DbRoles:
    superset: PgRole
    analyst: PgRole

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DbRoles:
        """SUPERSET_DB_ROLE / SUPERSET_DB_PASSWORD and ANALYST_DB_ROLE / ANALYST_DB_PASSWORD."""
        env = os.environ if env is None else env
        return cls(
            superset=PgRole(
                env.get("SUPERSET_DB_ROLE") or DEFAULT_SUPERSET_DB_ROLE,
                env.get("SUPERSET_DB_PASSWORD") or TEST_ONLY_SUPERSET_DB_PASSWORD,
            ),
            analyst=PgRole(
                env.get("ANALYST_DB_ROLE") or DEFAULT_ANALYST_DB_ROLE, env.get("ANALYST_DB_PASSWORD") or None
            ),
        )


DEFAULT_DATABASE_NAME = "CHT analytics"


def superset_database(
    conninfo: str, role: PgRole, env: Mapping[str, str] | None = None
) -> DatabaseConnection:
    """Superset's connection to the analytics database: the server and database of `conninfo`
    (SUPERSET_DB_HOST / SUPERSET_DB_PORT override what Superset should dial, e.g. from a
    container), as the read-only `role`. SUPERSET_DATABASE_NAME names it in Superset."""
    env = os.environ if env is None else env
    database = DatabaseConnection.from_conninfo(
        env.get("SUPERSET_DATABASE_NAME") or DEFAULT_DATABASE_NAME, conninfo, role.name, role.password or ""
    )
    host = env.get("SUPERSET_DB_HOST") or database.host
    port = int(env.get("SUPERSET_DB_PORT") or database.port)
    return DatabaseConnection(database.name, host, port, database.dbname, database.user, database.password)


def ensure_pg_role(conninfo: str, role: PgRole) -> bool:
    """Create or update a read-only role; True when it was created. The password is set on every
    run (the environment is the source of truth), sent as a SCRAM verifier computed client-side,
    so the plain text never reaches the server's statement log, and never appears in errors."""
    ident = quote_ident(role.name)
    attributes = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            created = False
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role.name,)).fetchone():
                try:
                    conn.execute(f"CREATE ROLE {ident}")
                    created = True
                except psycopg.errors.DuplicateObject:
                    pass  # created concurrently
            if role.password is None:
                login = "NOLOGIN PASSWORD NULL"
            else:
                verifier = conn.pgconn.encrypt_password(
                    role.password.encode(), role.name.encode(), b"scram-sha-256"
                )
                login = f"LOGIN PASSWORD {quote_literal(verifier.decode())}"
            conn.execute(f"ALTER ROLE {ident} WITH {attributes} {login}")
            conn.execute(f"ALTER ROLE {ident} SET default_transaction_read_only = on")
            return created
    except psycopg.Error as error:
        primary = error.diag.message_primary or type(error).__name__
        raise AccessError(f"could not set up PostgreSQL role {role.name!r}: {primary}") from None


@dataclass(frozen=True)
class GrantChanges:
    role: str
    granted: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()
    relations: int = 0
    warnings: tuple[str, ...] = ()


def view_relations(
    conn: psycopg.Connection, schemas: Sequence[str], prefixes: Sequence[str]
) -> set[tuple[str, str]]:
    """Relations of the view layers: in `schemas`, named with one of `prefixes`."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname = ANY(%s)
        """,
        (list(schemas),),
    ).fetchall()
    return {(s, r) for s, r in rows if any(r.startswith(p) for p in prefixes)}


CURRENT_GRANTS_SQL = """
SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'relation' END, n.nspname, c.relname, a.privilege_type
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL aclexplode(c.relacl) a
WHERE a.grantee = %(role)s::regrole
UNION ALL
SELECT 'schema', n.nspname, '', a.privilege_type
FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
WHERE a.grantee = %(role)s::regrole
UNION ALL
SELECT 'member', g.rolname, '', ''
FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
WHERE m.member = %(role)s::regrole
"""


def sync_pg_grants(conninfo: str, role: str, allowed: Iterable[tuple[str, str]]) -> GrantChanges:
    """Make `role`'s privileges exactly: USAGE on the schemas of `allowed`, SELECT on `allowed`.
    Everything else granted directly to it (write privileges, other relations, `raw`, role
    memberships) is revoked. One transaction; only the difference is executed."""
    allowed = set(allowed)
    bad = sorted({s for s, _ in allowed} & FORBIDDEN_SCHEMAS)
    if bad:
        raise AccessError(f"refusing to grant {role!r} access to schema(s) {bad}")
    schemas = {s for s, _ in allowed}
    ident = quote_ident(role)
    statements: list[str] = []
    granted: list[str] = []
    revoked: list[str] = []
    with psycopg.connect(conninfo) as conn, conn.transaction():
        current = conn.execute(CURRENT_GRANTS_SQL, {"role": quote_ident(role)}).fetchall()
        have_select = {(s, r) for kind, s, r, p in current if kind == "relation" and p == "SELECT"}
        have_usage = {s for kind, s, _, p in current if kind == "schema" and p == "USAGE"}
        for kind, schema, relation, privilege in current:
            if kind == "member":
                statements.append(f"REVOKE {quote_ident(schema)} FROM {ident}")
                revoked.append(f"membership in {schema}")
            elif kind == "schema" and (schema not in schemas or privilege != "USAGE"):
                statements.append(f"REVOKE {privilege} ON SCHEMA {quote_ident(schema)} FROM {ident}")
                revoked.append(f"{privilege} on schema {schema}")
            elif kind == "sequence":
                statements.append(
                    f"REVOKE {privilege} ON SEQUENCE {quote_qualified(schema, relation)} FROM {ident}"
                )
                revoked.append(f"{privilege} on sequence {schema}.{relation}")
            elif kind == "relation" and ((schema, relation) not in allowed or privilege != "SELECT"):
                statements.append(f"REVOKE {privilege} ON {quote_qualified(schema, relation)} FROM {ident}")
                revoked.append(f"{privilege} on {schema}.{relation}")
        for schema in sorted(schemas - have_usage):
            statements.append(f"GRANT USAGE ON SCHEMA {quote_ident(schema)} TO {ident}")
            granted.append(f"USAGE on schema {schema}")
        for schema, relation in sorted(allowed - have_select):
            statements.append(f"GRANT SELECT ON {quote_qualified(schema, relation)} TO {ident}")
            granted.append(f"SELECT on {schema}.{relation}")
        for statement in statements:
            conn.execute(statement)
    return GrantChanges(role, tuple(granted), tuple(revoked), len(allowed))


def grant_select(conninfo: str, roles: Iterable[str], schema: str, relation: str) -> None:
    """GRANT USAGE on `schema` and SELECT on one relation (what a dataset needs to be queried)."""
    if schema in FORBIDDEN_SCHEMAS:
        raise AccessError(f"refusing to grant access to {schema}.{relation}")
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for role in roles:
            conn.execute(f"GRANT USAGE ON SCHEMA {quote_ident(schema)} TO {quote_ident(role)}")
            conn.execute(f"GRANT SELECT ON {quote_qualified(schema, relation)} TO {quote_ident(role)}")


def sync_database_roles(
    conninfo: str, roles: DbRoles, config: AccessConfig, datasets: Sequence[Dataset]
) -> list[GrantChanges]:
    """Both PostgreSQL roles exist, and read exactly the view layers plus the datasets."""
    with psycopg.connect(conninfo) as conn:
        allowed = view_relations(conn, config.view_schemas, config.view_prefixes)
    allowed |= {(d.source.schema, d.source.relation) for d in datasets}
    changes = []
    for role in (roles.superset, roles.analyst):
        ensure_pg_role(conninfo, role)
        changes.append(sync_pg_grants(conninfo, role.name, allowed))
    changes.append(restrict_public(conninfo))
    return changes


# Functions that create large objects: persistent writes any role may make through PUBLIC.
LARGE_OBJECT_WRITERS = (
    "lo_create(oid)",
    "lo_creat(integer)",
    "lo_from_bytea(oid, bytea)",
    "lo_import(text)",
    "lo_import(text, oid)",
)


def restrict_public(conninfo: str) -> GrantChanges:
    """Take from PUBLIC the two writes every role has by default: temporary tables (TEMPORARY on
    the database) and large objects. A read-only role may switch default_transaction_read_only
    off in its own session, and then nothing but these defaults is left to stop it (found by
    tests/hostile); neither can be revoked from one role while PUBLIC holds it. The role running
    this keeps TEMPORARY (the replication stages pages in temp tables). Revoking on pg_catalog's
    functions needs a superuser: what could not be done is returned as warnings."""
    revoked: list[str] = []
    warnings: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        database = quote_ident(conn.execute("SELECT current_database()").fetchone()[0])
        temp_check = "SELECT has_database_privilege('public', current_database(), 'TEMPORARY')"
        if conn.execute(temp_check).fetchone()[0]:
            try:
                conn.execute(f"GRANT TEMPORARY ON DATABASE {database} TO CURRENT_USER")
                conn.execute(f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC")
            except psycopg.errors.InsufficientPrivilege:
                pass
            if conn.execute(temp_check).fetchone()[0]:
                warnings.append("PUBLIC keeps TEMPORARY on the database: revoke it as its owner")
            else:
                revoked.append("TEMPORARY on the database from PUBLIC")
        for function in LARGE_OBJECT_WRITERS:
            check = "SELECT has_function_privilege('public', %s, 'EXECUTE')"
            name = f"pg_catalog.{function}"
            if not conn.execute(check, (name,)).fetchone()[0]:
                continue
            # Without the privilege PostgreSQL may only warn, hence the second look.
            with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"REVOKE EXECUTE ON FUNCTION {name} FROM PUBLIC")
            if conn.execute(check, (name,)).fetchone()[0]:
                warnings.append(f"PUBLIC keeps EXECUTE on {name}: revoke it as a superuser")
            else:
                revoked.append(f"EXECUTE on {name} from PUBLIC")
    return GrantChanges("PUBLIC", (), tuple(revoked), 0, tuple(warnings))


# --- Superset roles, users and RLS -------------------------------------------------------------


@dataclass
class AccessReport:
    managers: list[JsonObject] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    grants: list[GrantChanges] = field(default_factory=list)


@dataclass(frozen=True)
class PublishedDataset:
    dataset: Dataset
    id: int
    permission: str  # the view-menu name of its datasource_access permission


def published_datasets(
    client: SupersetClient, database: DatabaseConnection, datasets: Sequence[Dataset]
) -> dict[str, PublishedDataset]:
    published = {}
    for dataset in datasets:
        uuid_ = dataset_uuid(database, dataset.source)
        item = require_one(client, "dataset", uuid_, f"dataset {dataset.source.relation!r}")
        permission = f"[{database.name}].[{dataset.source.relation}](id:{item['id']})"
        published[dataset.source.relation] = PublishedDataset(dataset, item["id"], permission)
    return published


def manager_datasets(manager: Manager, dashboards: Sequence[DashboardSpec]) -> list[str]:
    slugs = {d.slug for d in dashboards}
    wanted = manager.dashboards if manager.dashboards is not None else tuple(sorted(slugs))
    unknown = sorted(set(wanted) - slugs)
    if unknown:
        raise AccessError(f"manager {manager.name!r}: unknown dashboard(s) {unknown}")
    names = [name for d in dashboards if d.slug in wanted for name in d.datasets]
    return list(dict.fromkeys(names))


def datasource_permission_ids(client: SupersetClient) -> dict[str, int]:
    """view-menu name -> id of its `datasource_access` permission."""
    ids = {}
    for item in client.list_all("security/permissions-resources"):
        if item["permission"]["name"] == "datasource_access":
            ids[item["view_menu"]["name"]] = item["id"]
    return ids


def roles_by_name(client: SupersetClient) -> dict[str, int]:
    return {role["name"]: role["id"] for role in client.list_all("security/roles")}


def ensure_role(client: SupersetClient, name: str, roles: dict[str, int], report: AccessReport) -> int:
    if name not in roles:
        roles[name] = client.post("/api/v1/security/roles/", {"name": name})["id"]
        report.created.append(f"role {name}")
    return roles[name]


def set_role_permissions(
    client: SupersetClient, role_id: int, role: str, permission_ids: Iterable[int], report: AccessReport
) -> None:
    """Replace a role's permissions (a POST replaces the whole set), when they differ."""
    wanted = sorted(set(permission_ids))
    current = client.get(f"/api/v1/security/roles/{role_id}/permissions/")["result"]
    if sorted(p["id"] for p in current) != wanted:
        client.post(f"/api/v1/security/roles/{role_id}/permissions", {"permission_view_menu_ids": wanted})
        report.updated.append(f"permissions of role {role}")


def rls_rules(client: SupersetClient) -> dict[str, JsonObject]:
    return {rule["name"]: rule for rule in client.list_all("rowlevelsecurity")}


def upsert_rls_rule(
    client: SupersetClient,
    name: str,
    body: JsonObject,
    existing: JsonObject | None,
    report: AccessReport,
) -> None:
    if existing is None:
        client.post("/api/v1/rowlevelsecurity/", body)
        report.created.append(f"RLS rule {name}")
        return
    current = {
        "name": existing["name"],
        "description": existing.get("description"),
        "filter_type": existing["filter_type"],
        "tables": sorted(t["id"] for t in existing["tables"]),
        "roles": sorted(r["id"] for r in existing["roles"]),
        "clause": existing["clause"],
        "group_key": existing.get("group_key"),
    }
    if current != body:
        client.put(f"/api/v1/rowlevelsecurity/{existing['id']}", body)  # the whole object
        report.updated.append(f"RLS rule {name}")


def user_by_name(client: SupersetClient, username: str) -> JsonObject | None:
    found = client.find("security/users", username=username)
    return found[0] if found else None


def upsert_user(
    client: SupersetClient,
    manager: Manager,
    role_ids: list[int],
    env: Mapping[str, str],
    report: AccessReport,
) -> None:
    """A manager's Superset user: roles exactly [Gamma, their manager role]. The password comes
    from `password_env` when given (set on every run); a new user without one gets a random
    password nobody knows (reset it in Superset, or log in through SSO)."""
    password = env.get(manager.password_env) if manager.password_env else None
    if manager.password_env and not password:
        report.warnings.append(f"user {manager.name}: ${manager.password_env} is not set")
    body: JsonObject = {
        "first_name": manager.first_name or manager.name,
        "last_name": manager.last_name or "(manager)",
        "email": manager.email or f"{manager.name}@localhost",
        "active": True,
        "roles": sorted(role_ids),
    }
    user = user_by_name(client, manager.name)
    if user is None:
        body.update(username=manager.name, password=password or secrets.token_urlsafe(24))
        client.post("/api/v1/security/users/", body)
        report.created.append(f"user {manager.name}")
        return
    current = {
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "email": user["email"],
        "active": user["active"],
        "roles": sorted(r["id"] for r in user["roles"]),
    }
    if current != body:
        report.updated.append(f"user {manager.name}")
    if current != body or password:
        client.put(
            f"/api/v1/security/users/{user['id']}", {**body, **({"password": password} if password else {})}
        )


def remove_stale(
    client: SupersetClient,
    wanted_rules: set[str],
    wanted_roles: set[str],
    rules: Mapping[str, JsonObject],
    roles: dict[str, int],
    report: AccessReport,
) -> None:
    """Rules and roles we made that access.yaml no longer wants: permissions first, then the rule."""
    stale_roles = {
        name for name in roles if name.startswith(MANAGER_ROLE_PREFIX) and name not in wanted_roles
    }
    for name, rule in rules.items():
        if name.startswith(RLS_NAME_PREFIX) and name not in wanted_rules:
            for role in rule["roles"]:
                if role["name"] not in wanted_roles and role["name"] not in BUILTIN_SUPERSET_ROLES:
                    set_role_permissions(client, role["id"], role["name"], [], report)
            client.delete(f"/api/v1/rowlevelsecurity/{rule['id']}")
            report.removed.append(f"RLS rule {name}")
    for name in sorted(stale_roles):
        set_role_permissions(client, roles[name], name, [], report)
        client.delete(f"/api/v1/security/roles/{roles[name]}")
        report.removed.append(f"role {name}")


def provision_access(
    client: SupersetClient,
    conninfo: str,
    config: AccessConfig,
    database: DatabaseConnection,
    datasets: Sequence[Dataset],
    dashboards: Sequence[DashboardSpec],
    *,
    db_roles: DbRoles | None = None,
    env: Mapping[str, str] | None = None,
) -> AccessReport:
    """Bring PostgreSQL roles, Superset roles, users and RLS rules in line with `config`.

    Everything is resolved before the first write; RLS rules are written before the roles get
    datasource access, so no manager ever sees unfiltered rows."""
    env = os.environ if env is None else env
    report = AccessReport()
    places, report.warnings = resolve_places(conninfo, config, datasets)
    published = published_datasets(client, database, datasets)
    hierarchy_ids = sorted(p.id for p in published.values() if has_hierarchy(p.dataset))
    plan = []
    for manager in config.managers:
        names = manager_datasets(manager, dashboards)
        missing = sorted(set(names) - set(published))
        if missing:
            raise AccessError(f"manager {manager.name!r}: dataset(s) {missing} are not provisioned")
        uuids = sorted({places[ref] for ref in manager.places})
        plan.append((manager, names, uuids))

    report.grants = sync_database_roles(conninfo, db_roles or DbRoles.from_env(env), config, datasets)
    report.warnings += [warning for grants in report.grants for warning in grants.warnings]

    roles = roles_by_name(client)
    if BASE_ROLE not in roles:
        raise AccessError(f"Superset has no {BASE_ROLE!r} role: run `superset init`")
    rules = rls_rules(client)
    permission_ids = datasource_permission_ids(client)
    for manager, _names, uuids in plan:
        role_id = ensure_role(client, manager.role_name, roles, report)
        body = {
            "name": manager.rule_name,
            "description": MANAGED_NOTE,
            "filter_type": "Regular",
            "tables": hierarchy_ids,
            "roles": [role_id],
            "clause": rls_clause(uuids),
            "group_key": RLS_GROUP_KEY,
        }
        upsert_rls_rule(client, manager.rule_name, body, rules.get(manager.rule_name), report)
    for manager, names, uuids in plan:
        wanted = []
        for name in names:
            permission = published[name].permission
            if permission not in permission_ids:
                raise AccessError(f"Superset has no datasource_access permission for {permission}")
            wanted.append(permission_ids[permission])
        set_role_permissions(client, roles[manager.role_name], manager.role_name, wanted, report)
        if manager.kind == "user":
            upsert_user(client, manager, [roles[BASE_ROLE], roles[manager.role_name]], env, report)
        report.managers.append(
            {
                "manager": f"{manager.kind}:{manager.name}",
                "role": manager.role_name,
                "places": uuids,
                "datasets": names,
            }
        )
    wanted_rules = {m.rule_name for m in config.managers}
    wanted_roles = {m.role_name for m in config.managers}
    remove_stale(client, wanted_rules, wanted_roles, rules, roles, report)
    return report
