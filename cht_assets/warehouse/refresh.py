"""Refresh one view-layer object: a view, a function, or an incremental table."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import errors

from cht_assets.replica.schema import committed_change_seq
from cht_assets.sqlnames import quote_ident, safe_identifier
from cht_assets.warehouse.state import read_state, save_state


@dataclass(frozen=True)
class Buildable:
    """One SQL object as the warehouse builds it. `sql` is a SELECT (view, incremental) or a
    CREATE FUNCTION statement. An incremental table's `doc_key` column holds the `_id` of the raw
    doc each row comes from: rows are deleted and rebuilt by that id when the doc changes."""

    name: str
    layer: str
    kind: str
    sql: str
    code_version: str
    unique_key: tuple[str, ...] = ("uuid",)
    doc_key: str = "uuid"
    indexes: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    # Queries counting values that failed their type cast (generated formviews), for a check:
    # over all docs, and over the docs whose ids are bound to %(ids)s.
    cast_failures_sql: str = ""
    cast_failures_by_ids_sql: str = ""


# The objects downstream of one, in build order, each with a way to produce its SQL: only
# needed when the object must be dropped and recreated (CASCADE takes the dependent views that
# exist along), so only built then.
Dependents = Sequence[tuple[str, Callable[[], Buildable]]]


@dataclass(frozen=True)
class RefreshResult:
    name: str
    mode: str  # created | rebuilt | incremental | unchanged | replaced
    changed_docs: int
    row_count: int | None
    seconds: float
    # The doc ids an incremental refresh maintained; None when the whole object was (re)built.
    changed_ids: tuple[str, ...] | None = None
    # Of those, the ones whose rows it deleted or inserted (what checks need to look at).
    rewritten_ids: tuple[str, ...] | None = None


def relation_kind(conn: psycopg.Connection, name: str) -> str | None:
    """'r' table, 'v' view, 'm' materialized view, or None, for `public.<name>`."""
    row = conn.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relname = %s",
        (name,),
    ).fetchone()
    return row[0] if row else None


def drop_relation(conn: psycopg.Connection, name: str) -> None:
    kind = relation_kind(conn, name)
    keyword = {"r": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}.get(kind or "")
    if keyword:
        conn.execute(f"DROP {keyword} {quote_ident(name)} CASCADE")


def shape(conn: psycopg.Connection, select_sql: str) -> list[tuple[str, int]]:
    """Column names and type oids of a query, without running it."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({select_sql}) AS m LIMIT 0")
        return [(column.name, column.type_code) for column in cur.description]


def lock(conn: psycopg.Connection, name: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('cht_assets.refresh'), hashtext(%s))", (name,))


def count_rows(conn: psycopg.Connection, name: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchone()[0]


def create_view(conn: psycopg.Connection, obj: Buildable) -> None:
    conn.execute(f"CREATE OR REPLACE VIEW {quote_ident(obj.name)} AS\n{obj.sql}")


def existing_views(conn: psycopg.Connection, dependents: Dependents) -> Dependents:
    return [(name, build) for name, build in dependents if relation_kind(conn, name) == "v"]


def replace_cascading(
    conn: psycopg.Connection, name: str, create: Callable[[], None], dependents: Dependents
) -> None:
    """Drop `name` with the views that depend on it, create it anew and recreate those views,
    in the caller's transaction: readers wait for the commit, they never miss a relation."""
    dropped = existing_views(conn, dependents)
    # Most downstream first, each view on its own, before `name`: a reader locks a view before
    # the relations under it, and `DROP <name> CASCADE` alone would lock the other way round
    # (the table, then each view), so a reader holding a view and waiting for the table
    # deadlocked with the rebuild (seen with 20 readers; tests/hostile). Same lock order now.
    for view_name, _ in reversed(dropped):
        conn.execute(f"DROP VIEW IF EXISTS {quote_ident(view_name)} CASCADE")
    drop_relation(conn, name)
    create()
    for _, build in dropped:
        create_view(conn, build())


def refresh_view(conn: psycopg.Connection, obj: Buildable, dependents: Dependents) -> str:
    with conn.transaction():
        lock(conn, obj.name)
        kind = relation_kind(conn, obj.name)
        if kind == "v" and is_current(conn, obj):
            return "unchanged"  # a view is always as fresh as what it reads: nothing to do
        if kind not in (None, "v"):
            drop_relation(conn, obj.name)
        try:
            with conn.transaction():
                create_view(conn, obj)
            return "created" if kind is None else "replaced"
        except (errors.InvalidTableDefinition, errors.DatatypeMismatch, errors.FeatureNotSupported):
            # Columns removed, renamed or retyped: CREATE OR REPLACE cannot.
            replace_cascading(conn, obj.name, lambda: create_view(conn, obj), dependents)
            return "created"


def is_current(conn: psycopg.Connection, obj: Buildable) -> bool:
    """Whether the object was last built from this very SQL."""
    state = read_state(conn, obj.name)
    return state is not None and state.code_version == obj.code_version


def refresh_function(conn: psycopg.Connection, obj: Buildable) -> str:
    with conn.transaction():
        lock(conn, obj.name)
        exists = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' AND p.proname = %s)",
            (obj.name,),
        ).fetchone()[0]
        if exists and is_current(conn, obj):
            return "unchanged"
        conn.execute(obj.sql)
        return "replaced"


def create_table(conn: psycopg.Connection, obj: Buildable) -> int:
    """Create the table with its indexes; returns its row count."""
    table = quote_ident(obj.name)
    rows = conn.execute(f"CREATE TABLE {table} AS\n{obj.sql}").rowcount
    unique = safe_identifier(f"{obj.name}_{'_'.join(obj.unique_key)}_key")
    conn.execute(
        f"CREATE UNIQUE INDEX {quote_ident(unique)} ON {table} ({', '.join(map(quote_ident, obj.unique_key))})"
    )
    for columns in obj.indexes:
        index = safe_identifier(f"{obj.name}_{'_'.join(columns)}_idx")
        conn.execute(f"CREATE INDEX {quote_ident(index)} ON {table} ({', '.join(map(quote_ident, columns))})")
    return rows


def rebuild_table(conn: psycopg.Connection, obj: Buildable, dependents: Dependents) -> tuple[str, int]:
    """Everything again: in place when the columns are unchanged (readers keep the old rows
    until commit), else a new table that replaces the old one in the same transaction.
    Returns the mode and the rows the table now holds."""
    if relation_kind(conn, obj.name) == "r" and shape(conn, obj.sql) == shape(
        conn, f"TABLE {quote_ident(obj.name)}"
    ):
        table = quote_ident(obj.name)
        conn.execute(f"DELETE FROM {table}")
        return "rebuilt", conn.execute(f"INSERT INTO {table} SELECT * FROM ({obj.sql}) AS m").rowcount
    rows = 0

    def create() -> None:
        nonlocal rows
        rows = create_table(conn, obj)

    replace_cascading(conn, obj.name, create, dependents)
    return "created", rows


def changed_doc_ids(conn: psycopg.Connection, after: int, upto: int) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT _id FROM raw.couchdb_docs WHERE change_seq > %s AND change_seq <= %s", (after, upto)
    ).fetchall()
    return [row[0] for row in rows]


@dataclass(frozen=True)
class IncrementalResult:
    mode: str
    rows: int
    changed_ids: tuple[str, ...] | None = None
    rewritten_ids: tuple[str, ...] | None = None


def refresh_incremental(
    conn: psycopg.Connection, obj: Buildable, dependents: Dependents
) -> IncrementalResult:
    """Rebuild when the table is missing or its SQL changed; else delete and re-insert the rows
    of the docs that changed since the last refresh. The row count is kept from the changes:
    counting would read the whole table."""
    upto = committed_change_seq(conn)
    with conn.transaction():
        lock(conn, obj.name)
        state = read_state(conn, obj.name)
        current = relation_kind(conn, obj.name) == "r" and state and state.code_version == obj.code_version
        if not current:
            mode, rows = rebuild_table(conn, obj, dependents)
            result = IncrementalResult(mode, rows)
        else:
            ids = changed_doc_ids(conn, state.change_seq, upto)
            rows = state.row_count if state.row_count is not None else count_rows(conn, obj.name)
            result = IncrementalResult("unchanged", rows, (), ())
            if ids:
                result = rewrite_rows(conn, obj, ids, rows)
        save_state(conn, obj.name, obj.layer, obj.kind, obj.code_version, upto, result.rows)
    return result


def rewrite_rows(conn: psycopg.Connection, obj: Buildable, ids: list[str], rows: int) -> IncrementalResult:
    """Delete the rows of the changed docs and insert them again from the SQL."""
    table, key = quote_ident(obj.name), quote_ident(obj.doc_key)
    deleted = conn.execute(f"DELETE FROM {table} WHERE {key} = ANY(%s) RETURNING {key}", (ids,)).fetchall()
    inserted = conn.execute(f"INSERT INTO {table} {keyed_select(obj)} RETURNING {key}", (ids,)).fetchall()
    rewritten = tuple(sorted({row[0] for row in deleted} | {row[0] for row in inserted}))
    return IncrementalResult("incremental", rows - len(deleted) + len(inserted), tuple(ids), rewritten)


def keyed_select(obj: Buildable) -> str:
    """The object's rows for the doc ids bound as the one parameter. Names from documents may
    hold `%`, which psycopg would read as a placeholder: escaped."""
    return f"SELECT * FROM ({obj.sql.replace('%', '%%')}) AS m WHERE m.{quote_ident(obj.doc_key)} = ANY(%s)"


def refresh(conn: psycopg.Connection, obj: Buildable, dependents: Dependents = ()) -> RefreshResult:
    """Bring `obj` up to date; `dependents` are the objects downstream of it, in build order.
    Views are not counted: that would run them in full on every refresh."""
    started = time.monotonic()
    ids: tuple[str, ...] | None = None
    rewritten: tuple[str, ...] | None = None
    rows: int | None = None
    if obj.kind == "function":
        mode = refresh_function(conn, obj)
    elif obj.kind == "view":
        mode = refresh_view(conn, obj, dependents)
    elif obj.kind == "incremental":
        maintained = refresh_incremental(conn, obj, dependents)
        mode, rows, ids, rewritten = (
            maintained.mode,
            maintained.rows,
            maintained.changed_ids,
            maintained.rewritten_ids,
        )
    else:
        raise ValueError(f"{obj.name}: unknown kind {obj.kind!r} (view, incremental or function)")
    if obj.kind != "incremental":
        with conn.transaction():
            save_state(conn, obj.name, obj.layer, obj.kind, obj.code_version, 0, rows)
    changed = -1 if ids is None else len(ids)
    return RefreshResult(obj.name, mode, changed, rows, time.monotonic() - started, ids, rewritten)
