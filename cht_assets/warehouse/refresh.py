"""Refresh one view-layer object: a view, a function, an incremental table, or a table rebuilt
in full (a rollup)."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import psycopg
from psycopg import errors

from cht_assets.replica.schema import committed_change_seq
from cht_assets.sqlnames import quote_ident, quote_qualified, safe_identifier
from cht_assets.warehouse.state import RefreshState, read_state, save_state
from cht_assets.warehouse.versions import (
    RAW_DOCS,
    digest,
    docs_seq,
    fresh_token,
    inputs_version,
    rows_digest,
)


@dataclass(frozen=True)
class GroupRewrite:
    """`-- rewrite_by: chw_uuid = form_metadata.chw by uuid, reports counts rows`: a rollup of an
    incremental table (`source`) whose rows are rewritten by group (`column`, the source's
    `source_column`) when only the source moved: the groups of the source rows whose docs
    (`source_key`: the raw doc `_id` of each row) changed, and the groups whose `counts` no
    longer sum to the source's rows of the group (a report deleted or moved out of it). Summed
    over the rollup, `counts` must then equal the source's row count, or the rollup is rebuilt
    in full."""

    column: str
    source: str
    source_column: str
    source_key: str
    counts: str
    # `-- rewrite_stale: contactview_hierarchy: SELECT <column> FROM {table} …`: another relation
    # the rollup reads (`followed`) whose changes rewrite the groups that query returns (the
    # rows it made stale), instead of moving the rollup's inputs and so rebuilding it.
    followed: str = ""
    stale_sql: str = ""


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
    # For rows that depend on other docs than their own (a contact's row holds its ancestors'
    # names): a query over the table as it is (`{table}`), the changed doc ids bound as its one
    # parameter, returning the doc keys of the other rows to rewrite along.
    affected_sql: str = ""
    gin_indexes: tuple[str, ...] = ()  # array columns searched by containment (RLS: area_uuids)
    # `-- data_version: rows`: a view whose data version is its rows' (a small view over config
    # docs: what reads it need not move on every new doc, as it would by the raw change_seq).
    versioned_by_rows: bool = False
    # `-- raw_docs: <predicate over raw.couchdb_docs>`: the raw docs a view (or function, or
    # rollup) reads, all of them: it moves with those docs only (cht_assets.warehouse.versions).
    raw_docs: str = ""
    rewrite: GroupRewrite | None = None  # a rollup kept by groups (`-- rewrite_by:`)
    schema: str = "public"  # BASE_SCHEMA may put the base models in a schema of their own
    description: str = ""  # COMMENT ON the relation (warehouse.comments)
    # column -> description: COMMENT ON COLUMN, Dagster's column schema, Superset's datasets
    column_descriptions: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def qualified(self) -> str:
        return quote_qualified(self.schema, self.name)


# The objects downstream of one, in build order: name, schema and a way to produce its SQL, only
# needed when the object must be dropped and recreated (CASCADE takes the dependent views that
# exist along), so only built then.
Dependents = Sequence[tuple[str, str, Callable[[], Buildable]]]


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
    # What its rows are now (cht_assets.warehouse.versions): unchanged while they are.
    data_version: str = ""


# What DROP and COMMENT ON call each relation kind (a view is not a TABLE to them).
RELATION_KEYWORDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}


def relation_kind(conn: psycopg.Connection, name: str, schema: str = "public") -> str | None:
    """'r' table, 'v' view, 'm' materialized view, or None, for `<schema>.<name>`."""
    row = conn.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    ).fetchone()
    return row[0] if row else None


def drop_relation(conn: psycopg.Connection, name: str, schema: str = "public") -> None:
    keyword = RELATION_KEYWORDS.get(relation_kind(conn, name, schema) or "")
    if keyword:
        conn.execute(f"DROP {keyword} {quote_qualified(schema, name)} CASCADE")


def relocate(conn: psycopg.Connection, obj: Buildable) -> None:
    """Move the object into its schema when it was built in another one (BASE_SCHEMA set,
    changed or unset since): ALTER … SET SCHEMA keeps its rows, indexes and grants, and the
    views reading it, so nothing is rebuilt. When that schema already holds a relation of the
    name (cht-pipeline's own table, say), that one is taken over (rebuilt in place when its
    columns match) and ours in the old schema goes."""
    if (
        obj.schema != "public"
        and conn.execute("SELECT to_regnamespace(%s)", (obj.schema,)).fetchone()[0] is None
    ):
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(obj.schema)}")
    state = read_state(conn, obj.name)
    if state is None or state.schema == obj.schema:
        return
    keyword = RELATION_KEYWORDS.get(relation_kind(conn, obj.name, state.schema) or "")
    if not keyword:
        return
    if relation_kind(conn, obj.name, obj.schema) is None:
        conn.execute(
            f"ALTER {keyword} {quote_qualified(state.schema, obj.name)} SET SCHEMA {quote_ident(obj.schema)}"
        )
        conn.execute(
            "UPDATE cht_meta.refresh_state SET schema = %s WHERE object = %s", (obj.schema, obj.name)
        )
    else:
        drop_relation(conn, obj.name, state.schema)


def shape(conn: psycopg.Connection, select_sql: str) -> list[tuple[str, int]]:
    """Column names and type oids of a query, without running it."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({select_sql}) AS m LIMIT 0")
        return [(column.name, column.type_code) for column in cur.description]


def lock(conn: psycopg.Connection, name: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('cht_assets.refresh'), hashtext(%s))", (name,))


def count_rows(conn: psycopg.Connection, obj: Buildable) -> int:
    return conn.execute(f"SELECT count(*) FROM {obj.qualified}").fetchone()[0]


def create_view(conn: psycopg.Connection, obj: Buildable) -> None:
    conn.execute(f"CREATE OR REPLACE VIEW {obj.qualified} AS\n{obj.sql}")


def existing_views(conn: psycopg.Connection, dependents: Dependents) -> list[Buildable]:
    """The dependents that are views now, each built as it must be recreated."""
    return [build() for name, schema, build in dependents if relation_kind(conn, name, schema) == "v"]


def replace_cascading(
    conn: psycopg.Connection, obj: Buildable, create: Callable[[], None], dependents: Dependents
) -> None:
    """Drop `name` with the views that depend on it, create it anew and recreate those views,
    in the caller's transaction: readers wait for the commit, they never miss a relation."""
    dropped = existing_views(conn, dependents)
    # Most downstream first, each view on its own, before `name`: a reader locks a view before
    # the relations under it, and `DROP <name> CASCADE` alone would lock the other way round
    # (the table, then each view), so a reader holding a view and waiting for the table
    # deadlocked with the rebuild (seen with 20 readers; tests/hostile). Same lock order now.
    for view in reversed(dropped):
        conn.execute(f"DROP VIEW IF EXISTS {view.qualified} CASCADE")
    drop_relation(conn, obj.name, obj.schema)
    create()
    for view in dropped:
        create_view(conn, view)


def refresh_view(conn: psycopg.Connection, obj: Buildable, dependents: Dependents) -> str:
    with conn.transaction():
        lock(conn, obj.name)
        relocate(conn, obj)
        kind = relation_kind(conn, obj.name, obj.schema)
        if kind == "v" and is_current(conn, obj):
            return "unchanged"  # a view is always as fresh as what it reads: nothing to do
        if kind not in (None, "v"):
            drop_relation(conn, obj.name, obj.schema)
        try:
            with conn.transaction():
                create_view(conn, obj)
            return "created" if kind is None else "replaced"
        except (errors.InvalidTableDefinition, errors.DatatypeMismatch, errors.FeatureNotSupported):
            # Columns removed, renamed or retyped: CREATE OR REPLACE cannot.
            replace_cascading(conn, obj, lambda: create_view(conn, obj), dependents)
            return "created"


def is_current(conn: psycopg.Connection, obj: Buildable) -> bool:
    """Whether the object was last built from this very SQL."""
    return built_from(read_state(conn, obj.name), obj)


def built_from(state: RefreshState | None, obj: Buildable) -> bool:
    return state is not None and (state.code_version, state.schema) == (obj.code_version, obj.schema)


def refresh_function(conn: psycopg.Connection, obj: Buildable) -> str:
    with conn.transaction():
        lock(conn, obj.name)
        exists = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = %s)",
            (obj.schema, obj.name),
        ).fetchone()[0]
        if exists and is_current(conn, obj):
            return "unchanged"
        conn.execute(obj.sql)
        return "replaced"


def create_table(conn: psycopg.Connection, obj: Buildable) -> int:
    """Create the table with its indexes; returns its row count."""
    table = obj.qualified
    rows = conn.execute(f"CREATE TABLE {table} AS\n{obj.sql}").rowcount
    unique = safe_identifier(f"{obj.name}_{'_'.join(obj.unique_key)}_key")
    conn.execute(
        f"CREATE UNIQUE INDEX {quote_ident(unique)} ON {table} ({', '.join(map(quote_ident, obj.unique_key))})"
    )
    for columns in obj.indexes:
        index = safe_identifier(f"{obj.name}_{'_'.join(columns)}_idx")
        conn.execute(f"CREATE INDEX {quote_ident(index)} ON {table} ({', '.join(map(quote_ident, columns))})")
    for column in obj.gin_indexes:
        index = safe_identifier(f"{obj.name}_{column}_gin")
        conn.execute(f"CREATE INDEX {quote_ident(index)} ON {table} USING gin ({quote_ident(column)})")
    return rows


def rebuild_table(conn: psycopg.Connection, obj: Buildable, dependents: Dependents) -> tuple[str, int]:
    """Everything again: in place when the columns are unchanged (readers keep the old rows
    until commit), else a new table that replaces the old one in the same transaction.
    Returns the mode and the rows the table now holds."""
    if relation_kind(conn, obj.name, obj.schema) == "r" and shape(conn, obj.sql) == shape(
        conn, f"TABLE {obj.qualified}"
    ):
        table = obj.qualified
        conn.execute(f"DELETE FROM {table}")
        return "rebuilt", conn.execute(f"INSERT INTO {table} SELECT * FROM ({obj.sql}) AS m").rowcount
    rows = 0

    def create() -> None:
        nonlocal rows
        rows = create_table(conn, obj)

    replace_cascading(conn, obj, create, dependents)
    return "created", rows


# The doc ids changed in a window, by session: every incremental object of a run asks for the
# same window (its last refresh up to the committed change_seq), ~12 ms each at 1 000 000 docs.
# No write can enter a window below the committed change_seq; a doc written again since leaves
# it, and a kept answer then holds an id more, whose rows are rewritten as they already are.
CHANGED_IDS: weakref.WeakKeyDictionary[psycopg.Connection, dict[tuple[int, int], list[str]]] = (
    weakref.WeakKeyDictionary()
)


def changed_doc_ids(conn: psycopg.Connection, after: int, upto: int) -> list[str]:
    windows = CHANGED_IDS.setdefault(conn, {})
    if (after, upto) not in windows:
        rows = conn.execute(
            "SELECT DISTINCT _id FROM raw.couchdb_docs WHERE change_seq > %s AND change_seq <= %s",
            (after, upto),
        ).fetchall()
        windows[(after, upto)] = [row[0] for row in rows]
    return windows[(after, upto)]


@dataclass(frozen=True)
class IncrementalResult:
    mode: str
    rows: int
    changed_ids: tuple[str, ...] | None = None
    rewritten_ids: tuple[str, ...] | None = None
    data_version: str = ""


def refresh_incremental(
    conn: psycopg.Connection, obj: Buildable, dependents: Dependents, upto: int
) -> IncrementalResult:
    """Rebuild when the table is missing or its SQL changed; else delete and re-insert the rows
    of the docs that changed since the last refresh (up to the committed change_seq `upto`).
    The row count is kept from the changes: counting would read the whole table. A new data
    version when rows were rewritten, else the one it had."""
    with conn.transaction():
        lock(conn, obj.name)
        relocate(conn, obj)
        state = read_state(conn, obj.name)
        current = built_from(state, obj) and relation_kind(conn, obj.name, obj.schema) == "r"
        if not current:
            mode, rows = rebuild_table(conn, obj, dependents)
            result = IncrementalResult(mode, rows, data_version=fresh_token())
        else:
            ids = with_affected(conn, obj, changed_doc_ids(conn, state.change_seq, upto))
            rows = state.row_count if state.row_count is not None else count_rows(conn, obj)
            result = IncrementalResult("unchanged", rows, (), ())
            if ids:
                result = rewrite_rows(conn, obj, ids, rows)
            kept = None if result.rewritten_ids else state.data_version
            result = replace(result, data_version=kept or fresh_token())
        save_built(conn, obj, upto, result.rows, result.data_version)
    return result


def with_affected(conn: psycopg.Connection, obj: Buildable, ids: list[str]) -> list[str]:
    """The changed doc ids and the keys of the rows that depend on them (`affected_sql`)."""
    if not ids or not obj.affected_sql:
        return ids
    affected = conn.execute(obj.affected_sql.replace("{table}", obj.qualified), (ids,)).fetchall()
    return sorted(set(ids) | {row[0] for row in affected})


def rewrite_rows(conn: psycopg.Connection, obj: Buildable, ids: list[str], rows: int) -> IncrementalResult:
    """Delete the rows of the changed docs and insert them again from the SQL."""
    table, key = obj.qualified, quote_ident(obj.doc_key)
    deleted = conn.execute(f"DELETE FROM {table} WHERE {key} = ANY(%s) RETURNING {key}", (ids,)).fetchall()
    inserted = conn.execute(f"INSERT INTO {table} {keyed_select(obj)} RETURNING {key}", (ids,)).fetchall()
    rewritten = tuple(sorted({row[0] for row in deleted} | {row[0] for row in inserted}))
    return IncrementalResult("incremental", rows - len(deleted) + len(inserted), tuple(ids), rewritten)


def keyed_select(obj: Buildable) -> str:
    """The object's rows for the doc ids bound as the one parameter. Names from documents may
    hold `%`, which psycopg would read as a placeholder: escaped."""
    return f"SELECT * FROM ({obj.sql.replace('%', '%%')}) AS m WHERE m.{quote_ident(obj.doc_key)} = ANY(%s)"


def save_built(
    conn: psycopg.Connection,
    obj: Buildable,
    change_seq: int,
    rows: int | None,
    data_version: str,
    inputs_version: str | None = None,
    docs_seq: int | None = None,
) -> None:
    """What the object was built as and from (cht_meta.refresh_state)."""
    save_state(
        conn, obj.name, obj.layer, obj.kind, obj.code_version, change_seq, rows, obj.schema,
        data_version, inputs_version, docs_seq,
    )  # fmt: skip


def refresh_table(
    conn: psycopg.Connection,
    obj: Buildable,
    dependents: Dependents,
    upto: int,
    inputs: str | None,
    seen: int | None = None,
    source: RefreshState | None = None,
) -> IncrementalResult:
    """A rollup kept as a table (`materialized: table`): built again in full when what it reads
    moved (`inputs`, its inputs' version: any object upstream, and the date for age bands), as a
    view would compute it again on every read, in one transaction: readers keep the old rows
    until commit. For rollups whose query costs a second where each chart of a view would. One
    kept by groups (`obj.rewrite`) follows its source's changes group by group instead, as of
    the source's refresh state `source`."""
    with conn.transaction():
        lock(conn, obj.name)
        relocate(conn, obj)
        state = read_state(conn, obj.name)
        built = built_from(state, obj) and relation_kind(conn, obj.name, obj.schema) == "r"
        unmoved = (
            built and inputs is not None and state.inputs_version == inputs and state.row_count is not None
        )
        if obj.rewrite is not None and source is not None:
            upto = source.change_seq  # the changes after it are the source's next ones
        if unmoved and obj.rewrite is not None:
            result = rewrite_groups(conn, obj, state, upto, dependents)
        elif unmoved:
            result = IncrementalResult(
                "unchanged", state.row_count, data_version=state.data_version or fresh_token()
            )
        else:
            mode, rows = rebuild_table(conn, obj, dependents)
            version = fresh_token() if obj.rewrite is not None or inputs is None else inputs
            result = IncrementalResult(mode, rows, data_version=version)
        save_built(conn, obj, upto, result.rows, result.data_version, inputs, seen)
    return result


def rewrite_groups(
    conn: psycopg.Connection, obj: Buildable, state: RefreshState, upto: int, dependents: Dependents
) -> IncrementalResult:
    """Rewrite the rollup's groups that hold the source rows of the docs changed since it was
    built (up to `upto`), and the groups whose counts no longer match the source's (a report
    deleted or moved out of its group: its source row is gone, so no changed doc leads to the
    group); rebuilt in full when one of them is NULL, or when the counts still differ."""
    rewrite = obj.rewrite
    assert rewrite is not None
    ids = changed_doc_ids(conn, state.change_seq, upto)
    kept = state.data_version or fresh_token()
    if not ids:
        return IncrementalResult("unchanged", state.row_count, (), (), kept)
    source, table = quote_ident(rewrite.source), obj.qualified
    column, source_column = quote_ident(rewrite.column), quote_ident(rewrite.source_column)
    counts = quote_ident(rewrite.counts)
    groups = {
        row[0]
        for row in conn.execute(
            f"SELECT DISTINCT {source_column} FROM {source} WHERE {quote_ident(rewrite.source_key)} = ANY(%s)",
            (ids,),
        )
    }
    if rewrite.stale_sql:
        groups |= {row[0] for row in conn.execute(rewrite.stale_sql.replace("{table}", table))}
    # Counted per group on both sides (integers only: far cheaper than the rollup's query).
    groups |= {
        row[0]
        for row in conn.execute(
            f"SELECT coalesce(r.g, s.g) FROM "
            f"(SELECT {column} AS g, sum({counts}) AS n FROM {table} WHERE {column} IS NOT NULL GROUP BY 1) AS r "
            f"FULL JOIN (SELECT {source_column} AS g, count(*) AS n FROM {source} "
            f"WHERE {source_column} IS NOT NULL GROUP BY 1) AS s ON s.g = r.g WHERE r.n IS DISTINCT FROM s.n "
            f"UNION ALL SELECT NULL WHERE (SELECT coalesce(sum({counts}), 0) FROM {table} WHERE {column} IS NULL) "
            f"<> (SELECT count(*) FROM {source} WHERE {source_column} IS NULL)"
        )
    }
    if None not in groups:
        result = rewrite_rows(conn, obj, sorted(groups), state.row_count)
        counted, rows = conn.execute(
            f"SELECT (SELECT coalesce(sum({counts}), 0) FROM {table}), (SELECT count(*) FROM {source})"
        ).fetchone()
        if counted == rows:
            version = fresh_token() if result.rewritten_ids else kept
            mode = "incremental" if result.rewritten_ids else "unchanged"
            return replace(result, mode=mode, changed_ids=tuple(ids), data_version=version)
    mode, rows = rebuild_table(conn, obj, dependents)
    return IncrementalResult(mode, rows, data_version=fresh_token())


def table_inputs(
    conn: psycopg.Connection,
    obj: Buildable,
    reads: Sequence[str],
    raw_seq: int,
    source: RefreshState | None = None,
) -> str | None:
    """The version of what a view, function or rollup reads. A rollup kept by groups leaves its
    source (whose refresh state is `source`) and the relation it follows out, their changes
    followed group by group, but not their code: rebuilt by new code, they may differ in
    every row."""
    code = obj.code_version
    if obj.rewrite is not None:
        parts = [code, source.code_version if source is not None else ""]
        if followed := obj.rewrite.followed:
            state = read_state(conn, followed)
            parts.append(state.code_version if state is not None else "")
        code = digest(parts)
        reads = [name for name in reads if name not in (obj.rewrite.source, followed)]
    return inputs_version(conn, code, reads, [obj.sql], raw_seq, daily=obj.kind == "table")


def rows_version(conn: psycopg.Connection, obj: Buildable) -> str:
    return digest([obj.code_version, rows_digest(conn, f"{obj.schema}.{obj.name}") or ""])


def refresh(
    conn: psycopg.Connection, obj: Buildable, dependents: Dependents = (), reads: Sequence[str] = ()
) -> RefreshResult:
    """Bring `obj` up to date; `dependents` are the objects downstream of it, in build order;
    `reads` what its SQL reads (objects and raw relations: their versions make its data version).
    Views are not counted: that would run them in full on every refresh."""
    started = time.monotonic()
    ids: tuple[str, ...] | None = None
    rewritten: tuple[str, ...] | None = None
    rows: int | None = None
    if obj.kind not in ("view", "function", "incremental", "table"):
        raise ValueError(f"{obj.name}: unknown kind {obj.kind!r} (view, incremental, table or function)")
    reads_raw = bool(RAW_DOCS & set(reads))
    upto = committed_change_seq(conn) if obj.kind in ("incremental", "table") or reads_raw else 0
    # What it was built from last: for a view versioned by its rows, or one reading few raw docs.
    filtered = bool(obj.raw_docs) and reads_raw and obj.kind != "incremental"
    state = read_state(conn, obj.name) if filtered or obj.versioned_by_rows else None
    seen = docs_seq(conn, obj.raw_docs, state, upto) if filtered else None
    # A rollup kept by groups: its source's refresh state, read once for its version and window.
    source = read_state(conn, obj.rewrite.source) if obj.rewrite is not None else None
    inputs = None
    if obj.kind != "incremental":
        raw_seq = upto if seen is None else seen
        inputs = table_inputs(conn, obj, reads, raw_seq, source)
    version = inputs or fresh_token()
    if obj.kind == "function":
        mode, version = refresh_function(conn, obj), inputs or digest([obj.code_version, obj.schema])
    elif obj.kind == "view":
        mode = refresh_view(conn, obj, dependents)
        if obj.versioned_by_rows:
            unmoved = state is not None and inputs is not None and state.inputs_version == inputs
            version = state.data_version if unmoved and state.data_version else rows_version(conn, obj)
    else:
        maintained = (
            refresh_incremental(conn, obj, dependents, upto)
            if obj.kind == "incremental"
            else refresh_table(conn, obj, dependents, upto, inputs, seen, source)
        )
        mode, rows, ids, rewritten, version = (
            maintained.mode,
            maintained.rows,
            maintained.changed_ids,
            maintained.rewritten_ids,
            maintained.data_version,
        )
    if obj.kind in ("view", "function"):
        with conn.transaction():
            save_built(conn, obj, upto, rows, version, inputs, seen)
    changed = -1 if ids is None else len(ids)
    return RefreshResult(obj.name, mode, changed, rows, time.monotonic() - started, ids, rewritten, version)
