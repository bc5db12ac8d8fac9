"""PostgreSQL roles for reading the warehouse: the read-only role Superset connects as and the one
analysts log in as.

Both are read-only (`default_transaction_read_only`, no write grants, no role memberships), with a
`statement_timeout` so that a runaway query is cancelled (READER_STATEMENT_TIMEOUT). They
get USAGE on the view schemas and SELECT on the view-layer relations only (`contactview_*`,
`formview_*`, `useview_*` by default, plus the published datasets). Never anything in `raw`, and
never `public`'s couch2pg compatibility views, which expose raw docs (`_users` included). Grants
are computed as a diff against the catalog, so a rerun changes nothing. Pure: psycopg only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psycopg

from cht_assets.sqlnames import quote_ident, quote_literal, quote_qualified
from cht_assets.warehouse.catalog import BASE_LAYER, SQL_ROOT
from cht_assets.warehouse.dictionary import CHOICES_TABLE, FIELDS_TABLE

# The data dictionary's tables (public): what every column and choice code means.
DICTIONARY_TABLES = frozenset({FIELDS_TABLE, CHOICES_TABLE})

FORBIDDEN_SCHEMAS = frozenset({"raw", "pg_catalog", "information_schema"})


class RoleError(ValueError):
    """A role cannot be set up, or a grant would reach a schema no reader may see."""


@dataclass(frozen=True)
class PgRole:
    name: str
    password: str | None = field(default=None, repr=False)  # None: NOLOGIN (a group role)
    # Cancels a reader's runaway query (one bad chart would otherwise pin a core after Superset
    # gave up on it); 0: no limit. READER_STATEMENT_TIMEOUT in the pipeline.
    statement_timeout_seconds: int = 0


@dataclass(frozen=True)
class DbRoles:
    superset: PgRole
    analyst: PgRole


def ensure_pg_role(conninfo: str, role: PgRole) -> bool:
    """Create or update a read-only role; True when it was created. The password is set on every
    run (configuration is the source of truth), sent as a SCRAM verifier computed client-side,
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
            apply_role_settings(conn, role.name, reader_settings(role))
            return created
    except psycopg.Error as error:
        primary = error.diag.message_primary or type(error).__name__
        raise RoleError(f"could not set up PostgreSQL role {role.name!r}: {primary}") from None


def reader_settings(role: PgRole) -> dict[str, str]:
    """The session defaults a read-only role logs in with (PostgreSQL's own spelling, as
    pg_db_role_setting keeps them)."""
    timeout = max(0, role.statement_timeout_seconds)
    return {
        "default_transaction_read_only": "on",
        # Whole seconds in ms, as PostgreSQL stores a unitless value: comparing stays exact.
        "statement_timeout": str(timeout * 1000),
    }


def role_settings(conn: psycopg.Connection, name: str) -> dict[str, str]:
    """What `ALTER ROLE name SET ...` has set for every database."""
    rows = conn.execute(
        """
        SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
        WHERE r.rolname = %s AND s.setdatabase = 0
        """,
        (name,),
    ).fetchall()
    return dict(row[0].split("=", 1) for row in rows)


def apply_role_settings(conn: psycopg.Connection, name: str, wanted: dict[str, str]) -> list[str]:
    """ALTER ROLE ... SET only the settings that differ (a rerun changes nothing); the names of
    those changed. Sessions opened afterwards get them; open ones keep theirs."""
    current = role_settings(conn, name)
    changed = [key for key, value in wanted.items() if current.get(key) != value]
    for key in changed:
        conn.execute(f"ALTER ROLE {quote_ident(name)} SET {key} = {quote_literal(wanted[key])}")
    return changed


@dataclass(frozen=True)
class GrantChanges:
    role: str
    granted: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()
    relations: int = 0
    warnings: tuple[str, ...] = ()


def view_relations(
    conn: psycopg.Connection, schemas: Sequence[str], prefixes: Sequence[str], base_schema: str = "public"
) -> set[tuple[str, str]]:
    """Relations of the view layers: in `schemas`, named with one of `prefixes`, and
    cht-pipeline's base models (`sql/base/`, names without a prefix: `contact`, `"user"`, ...)
    in `base_schema` (BASE_SCHEMA), and the data dictionary's tables."""
    names = base_model_names()
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname = ANY(%s)
        """,
        ([*schemas, base_schema],),
    ).fetchall()
    return {
        (s, r)
        for s, r in rows
        if (s == base_schema and r in names)
        or (s in schemas and (r in DICTIONARY_TABLES or any(r.startswith(p) for p in prefixes)))
    }


def base_model_names() -> frozenset[str]:
    return frozenset(path.stem for path in (SQL_ROOT / BASE_LAYER).glob("*.sql"))


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
        raise RoleError(f"refusing to grant {role!r} access to schema(s) {bad}")
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
        raise RoleError(f"refusing to grant access to {schema}.{relation}")
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for role in roles:
            conn.execute(f"GRANT USAGE ON SCHEMA {quote_ident(schema)} TO {quote_ident(role)}")
            conn.execute(f"GRANT SELECT ON {quote_qualified(schema, relation)} TO {quote_ident(role)}")


def sync_database_roles(
    conninfo: str,
    roles: DbRoles,
    view_schemas: Sequence[str],
    view_prefixes: Sequence[str],
    published: Iterable[tuple[str, str]] = (),
    base_schema: str = "public",
) -> list[GrantChanges]:
    """Both roles exist, and read exactly the view layers plus the `published` relations; the
    base models in `base_schema`, which their search_path includes so that cht-pipeline's
    queries find them by name."""
    with psycopg.connect(conninfo) as conn:
        allowed = view_relations(conn, view_schemas, view_prefixes, base_schema)
    allowed |= set(published)
    changes = []
    for role in (roles.superset, roles.analyst):
        ensure_pg_role(conninfo, role)
        set_search_path(conninfo, role.name, base_schema)
        changes.append(sync_pg_grants(conninfo, role.name, allowed))
    changes.append(restrict_public(conninfo))
    return changes


def set_search_path(conninfo: str, role: str, base_schema: str) -> None:
    """`"$user", public, <base_schema>` for a reader's new sessions (PostgreSQL's default path
    when the base models are in public)."""
    ident = quote_ident(role)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if base_schema == "public":
            conn.execute(f"ALTER ROLE {ident} RESET search_path")
        else:
            conn.execute(f'ALTER ROLE {ident} SET search_path = "$user", public, {quote_ident(base_schema)}')


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
