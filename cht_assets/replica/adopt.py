"""Adopt the raw tables of cht-couch2pg or cht-sync as the raw replica, instead of reading every
doc of CouchDB again (tens of millions on a large deployment).

    couch2pg  <schema>.<table> (doc jsonb), `couchdb` by default: medic and medic-sentinel docs
              together; couchdb_users_meta, couchdb_medic_logs, couchdb_medic_users: one database
              each; <schema>.couchdb_progress (seq, source = 'host[:port]/<db>')
    cht-sync  <schema>.<table> (saved_timestamp, _id, _deleted, source = '<host>/<db>', doc),
              `v1.couchdb` by default, and <schema>.couchdb_progress (seq, pending, source)

The rows become rows of `raw.couchdb_docs` as replication writes them (a new change_seq, so the
view layers build them; no password hashes in `_users` docs), each database's checkpoint its row
in `raw.couchdb_progress`, and the live form docs get their XForm from CouchDB (neither tool kept
attachments, and the next sync brings only forms that change): all in one transaction, read from
one snapshot of the old tables. Then each adopted database is synced from its checkpoint and
reconciled with CouchDB, and what the old tool's checkpoint claims without holding it is fetched
(`replica.reconcile.repair`). Neither tool kept conflict revisions: a doc's `_conflicts` appear
with its next change. cht-couch2pg kept no deletes, so no tombstones of docs deleted before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from itertools import islice
from typing import TypeVar
from urllib.parse import unquote

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from cht_assets.couch.client import CouchClient
from cht_assets.replica.docs import USER_SECRET_FIELDS
from cht_assets.replica.reconcile import ReconcileError, Repair, repair
from cht_assets.replica.replicate import SyncAlreadyRunning, replicate_database, save_form_xml
from cht_assets.replica.schema import WRITE_LOCK_KEY, compat_relation, ensure_raw_schema

Log = Callable[[str], None]
T = TypeVar("T")


class Layout(StrEnum):
    COUCH2PG = "couch2pg"
    CHT_SYNC = "cht-sync"


DEFAULT_SCHEMAS = {Layout.COUCH2PG: "public", Layout.CHT_SYNC: "v1"}
DEFAULT_TABLE = "couchdb"
OLD_PROGRESS_TABLE = "couchdb_progress"
# cht-couch2pg's shared table: the docs medic-sentinel writes (Sentinel's info docs, its outbound
# push queue, archiving jobs); everything else is medic's. A doc put on the wrong side is found
# by the reconciliation after adopting: fetched for one database, tombstoned in the other.
SENTINEL_DOC = sql.SQL(
    "(t.doc ->> 'type' = 'info' OR starts_with(t.doc ->> '_id', 'task:outbound:') "
    "OR starts_with(t.doc ->> '_id', 'archive:'))"
)
EVERY_ROW = sql.SQL("true")
# Heap blocks per statement when the old tables are in this database (a TID range scan each):
# a few seconds of work, so progress shows.
BLOCKS_PER_BATCH = 2048
# Rows per INSERT when the old tables are streamed from another database.
ROWS_PER_BATCH = 20_000
PROGRESS_SECONDS = 5.0
# How long the sync and reconciliation after copying wait for another sync of the database.
LOCK_WAIT_SECONDS = 60.0
LOCK_POLL_SECONDS = 0.2

STAGING_DDL = """
CREATE TEMP TABLE adopt_rows (
    source text, _id text, _rev text, _deleted boolean, saved_timestamp timestamptz, doc jsonb
) ON COMMIT DROP
"""
# Rows as replication stores them. Among duplicates (couch2pg's side tables have no key) and
# over a row already there (forced adoption), the revision CouchDB would pick wins: the higher
# generation, then the greater revision id.
STORE_ROWS = sql.SQL("""
WITH written AS (
    INSERT INTO raw.couchdb_docs AS d (source, _id, _rev, _deleted, doc, saved_timestamp)
    SELECT DISTINCT ON (a.source, a._id)
        a.source, a._id, a._rev, a._deleted,
        CASE  -- a doc kept as it is stays compressed as it is: rewriting one costs 3 times more
            WHEN a.doc ->> 'type' = 'user' OR starts_with(a._id, 'org.couchdb.user:')
                THEN a.doc - '_conflicts' - {secrets}::text[]
            WHEN a.doc ? '_conflicts' THEN a.doc - '_conflicts'
            ELSE a.doc
        END,
        coalesce(a.saved_timestamp, clock_timestamp())
    FROM ({rows}) AS a (source, _id, _rev, _deleted, saved_timestamp, doc)
    ORDER BY a.source, a._id, substring(a._rev FROM '^[0-9]+')::bigint DESC NULLS LAST, a._rev DESC
    ON CONFLICT (source, _id) DO UPDATE
    SET _rev = excluded._rev, _deleted = excluded._deleted, _conflicts = NULL, doc = excluded.doc,
        saved_timestamp = excluded.saved_timestamp, change_seq = nextval('raw.couchdb_change_seq')
    WHERE (substring(excluded._rev FROM '^[0-9]+')::bigint, excluded._rev)
        > (substring(d._rev FROM '^[0-9]+')::bigint, d._rev)
    RETURNING d.source, d._deleted
)
SELECT source, count(*), count(*) FILTER (WHERE NOT _deleted) FROM written GROUP BY source
""")
# The source's row counts are unknown until the next sync counts them.
SAVE_CHECKPOINT = """
INSERT INTO raw.couchdb_progress (source, seq, pending, updated_at, docs, live_docs)
VALUES (%s, %s, %s, now(), NULL, NULL)
ON CONFLICT (source) DO UPDATE SET seq = excluded.seq, pending = excluded.pending,
    updated_at = now(), docs = NULL, live_docs = NULL
"""
NON_EMPTY = """
SELECT s FROM unnest(%s::text[]) AS s
WHERE EXISTS (SELECT 1 FROM raw.couchdb_docs AS d WHERE d.source = s)
   OR EXISTS (SELECT 1 FROM raw.couchdb_progress AS p WHERE p.source = s)
"""
LIVE_FORMS = """
SELECT _id, _rev, doc -> '_attachments' FROM raw.couchdb_docs
WHERE source = %s AND doc ->> 'type' = 'form' AND NOT _deleted
"""


class AdoptError(RuntimeError):
    """The old database cannot be adopted as it is (the message says why and what to do)."""


@dataclass(frozen=True)
class OldReplica:
    """Where the old tool's tables are: `url` another PostgreSQL database, None this one."""

    layout: Layout
    schema: str
    table: str = DEFAULT_TABLE
    url: str | None = field(default=None, repr=False)  # may hold a password


@dataclass(frozen=True)
class Checkpoint:
    old_source: str
    seq: str
    pending: int | None


@dataclass
class Copied:
    """Rows written per source, and the pace, while copying."""

    started: float = field(default_factory=time.monotonic)
    rows: dict[str, int] = field(default_factory=dict)
    live: dict[str, int] = field(default_factory=dict)

    def add(self, counts: Iterable[tuple[str, int, int]]) -> None:
        for source, rows, live in counts:
            self.rows[source] = self.rows.get(source, 0) + rows
            self.live[source] = self.live.get(source, 0) + live

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        rate = self.total / seconds if seconds > 0 else 0.0
        return f"{self.total:,} rows adopted in {seconds:.1f}s, {rate:,.0f} docs/s"


@dataclass(frozen=True)
class AdoptedSource:
    source: str
    old_source: str
    seq: str
    rows: int  # rows copied
    live_rows: int
    forms: int  # live form docs whose XForm was fetched
    caught_up: int  # changes the sync after adopting read (those after the adopted checkpoint)
    repaired: Repair  # what the reconciliation afterwards fetched or tombstoned


@dataclass(frozen=True)
class AdoptResult:
    adopted: list[AdoptedSource]
    absent: list[str]  # databases asked for that the old tool did not replicate
    ignored: list[str]  # the old tool's sources that are not among the databases asked for
    seconds: float


def db_name(old_source: str) -> str:
    """`host:5984/medic`, `host/medic`, `host/couchdb/medic-sentinel` -> the database's name."""
    return unquote(old_source.rstrip("/").rsplit("/", 1)[-1])


def match_sources(old_sources: Iterable[str], sources: Sequence[str]) -> dict[str, str]:
    """Our source for each old one it is the same database as (by name)."""
    matched: dict[str, list[str]] = {}
    for old in old_sources:
        if db_name(old) in sources:
            matched.setdefault(db_name(old), []).append(old)
    several = {source: olds for source, olds in matched.items() if len(olds) > 1}
    if several:
        raise AdoptError(
            f"several CouchDB servers were replicated into the old tables for the same database: {several}; "
            "adopting takes one server's"
        )
    return {source: olds[0] for source, olds in matched.items()}


def old_relation(old: OldReplica, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(old.schema), sql.Identifier(table))


def read_checkpoints(conn: psycopg.Connection, old: OldReplica) -> dict[str, Checkpoint]:
    progress = old_relation(old, OLD_PROGRESS_TABLE)
    if conn.execute("SELECT to_regclass(%s)", (progress.as_string(conn),)).fetchone()[0] is None:
        raise AdoptError(f"no table {old.schema}.{OLD_PROGRESS_TABLE} in the old database")
    pending = sql.SQL("pending" if old.layout == Layout.CHT_SYNC else "NULL::bigint")
    rows = conn.execute(sql.SQL("SELECT source, seq, {} FROM {}").format(pending, progress)).fetchall()
    return {source: Checkpoint(source, str(seq), count) for source, seq, count in rows if seq is not None}


def old_tables(old: OldReplica, matched: dict[str, str]) -> dict[str, sql.Composable]:
    """Each old table to read, with the expression giving a row's source (NULL: not adopted)."""
    if old.layout == Layout.CHT_SYNC:
        by_old = {old_source: source for source, old_source in matched.items()}
        return {old.table: sql.SQL("{} ->> t.source").format(sql.Literal(Jsonb(by_old)))}
    shared: list[str] = []
    tables: dict[str, sql.Composable] = {}
    for source in matched:  # in the tables cht-couch2pg's runner chose (the compat views follow)
        relation = compat_relation(source)
        if relation == "couchdb":
            shared.append(source)
        else:
            tables[relation] = sql.Literal(source)
    if shared:
        sentinel = [source for source in shared if source.endswith("-sentinel")]
        main = [source for source in shared if not source.endswith("-sentinel")]
        if len(sentinel) > 1 or len(main) > 1:
            raise AdoptError(f"cannot tell apart the docs of {shared} in cht-couch2pg's table {old.table}")
        tables[old.table] = sql.SQL("CASE WHEN {} THEN {} ELSE {} END").format(
            SENTINEL_DOC, sql.Literal(next(iter(sentinel), None)), sql.Literal(next(iter(main), None))
        )
    return tables


def select_rows(
    old: OldReplica, table: str, source: sql.Composable, condition: sql.Composable = EVERY_ROW
) -> sql.Composed:
    """The adopted rows of one old table as (source, _id, _rev, _deleted, saved_timestamp, doc);
    `condition` narrows them (on `t`)."""
    if old.layout == Layout.CHT_SYNC:
        # The session's TimeZone is UTC: cht-sync's `timestamp` column holds UTC wall time.
        columns = sql.SQL(
            "t._id, t.doc ->> '_rev', coalesce(t._deleted, false), t.saved_timestamp::timestamptz, t.doc"
        )
        key = sql.SQL("t._id")
    else:
        columns = sql.SQL("t.doc ->> '_id', t.doc ->> '_rev', false, NULL::timestamptz, t.doc")
        key = sql.SQL("t.doc ->> '_id'")
    return sql.SQL(
        "SELECT s.source, {columns} FROM {relation} AS t, LATERAL (SELECT {source} AS source) AS s "
        "WHERE s.source IS NOT NULL AND {key} IS NOT NULL AND t.doc ->> '_rev' IS NOT NULL AND {condition}"
    ).format(columns=columns, relation=old_relation(old, table), source=source, key=key, condition=condition)


# --- copying ------------------------------------------------------------------------------


def store_rows(conn: psycopg.Connection, rows: sql.Composable) -> list[tuple[str, int, int]]:
    """Write the rows of a SELECT into the replica; (source, rows, live rows) written."""
    query = STORE_ROWS.format(rows=rows, secrets=sql.Literal(list(USER_SECRET_FIELDS)))
    return conn.execute(query).fetchall()


class Pace:
    """Logs the running totals every PROGRESS_SECONDS, and when asked to."""

    def __init__(self, copied: Copied, say: Log) -> None:
        self.copied, self.say, self.last = copied, say, time.monotonic()

    def tick(self, table: str, *, final: bool = False) -> None:
        if final or time.monotonic() - self.last >= PROGRESS_SECONDS:
            self.say(f"{table}: {self.copied.summary()}")
            self.last = time.monotonic()


def copy_in_place(
    conn: psycopg.Connection, old: OldReplica, table: str, source: sql.Composable, pace: Pace
) -> None:
    """INSERT ... SELECT in the database, a range of heap blocks per statement (a TID range scan:
    no index needed, and cht-couch2pg's side tables have none)."""
    relation = old_relation(old, table).as_string(conn)
    size = "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::bigint"
    blocks = conn.execute(size, (relation,)).fetchone()[0]
    for start in range(0, max(blocks, 1), BLOCKS_PER_BATCH):
        end = start + BLOCKS_PER_BATCH
        condition = sql.SQL("t.ctid >= {}::tid").format(sql.Literal(f"({start},0)"))
        if end < blocks:  # the last range stays open
            condition = sql.SQL("{} AND t.ctid < {}::tid").format(condition, sql.Literal(f"({end},0)"))
        pace.copied.add(store_rows(conn, select_rows(old, table, source, condition)))
        pace.tick(table)


def copy_streamed(
    conn: psycopg.Connection,
    reader: psycopg.Connection,
    old: OldReplica,
    table: str,
    source: sql.Composable,
    pace: Pace,
) -> None:
    """COPY the rows out of the other database and into a staging table, ROWS_PER_BATCH at a
    time, each batch then written like the rows of the same database."""
    out_query = sql.SQL("COPY ({}) TO STDOUT").format(select_rows(old, table, source))
    with reader.cursor() as out_cursor, out_cursor.copy(out_query) as out, conn.cursor() as cur:
        rows = iter(out)  # one text row at a time
        while True:
            count = 0
            with cur.copy("COPY adopt_rows FROM STDIN") as into:
                for row in islice(rows, ROWS_PER_BATCH):
                    into.write(row)
                    count += 1
            if not count:
                return
            pace.copied.add(store_rows(conn, sql.SQL("TABLE adopt_rows")))
            cur.execute("TRUNCATE adopt_rows")
            pace.tick(table)


# --- adopting -----------------------------------------------------------------------------


def refuse_public(old: OldReplica) -> None:
    """In this database, the old tables cannot stay where the couch2pg-compatible views go."""
    if old.url is None and old.schema == "public":
        raise AdoptError(
            "the old tables are in schema public of this database, where the pipeline keeps its "
            "cht-couch2pg views (couchdb, couchdb_progress, couchdb_users_meta, couchdb_medic_logs, "
            "couchdb_medic_users). Move them to a schema of their own first (views and materialized "
            "views on them keep working), e.g. CREATE SCHEMA couch2pg; ALTER TABLE public.couchdb "
            "SET SCHEMA couch2pg; (the same for each of those tables the old tool made), then adopt "
            "from schema couch2pg"
        )


def lock_sources(conn: psycopg.Connection, sources: Iterable[str]) -> None:
    """No sync of these databases while adopting, and no view refresh reads past rows not
    committed yet (both as a replication batch does): view refreshes wait for the commit."""
    for source in sources:
        locked = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext('cht_assets.sync'), hashtext(%s))", (source,)
        ).fetchone()[0]
        if not locked:
            raise AdoptError(f"a sync of CouchDB database '{source}' is running; adopt later")
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (WRITE_LOCK_KEY,))


def check_tables(reader: psycopg.Connection, old: OldReplica, tables: Iterable[str]) -> None:
    exists = "SELECT to_regclass(%s) IS NOT NULL"
    absent = [
        table
        for table in tables
        if not reader.execute(exists, (old_relation(old, table).as_string(reader),)).fetchone()[0]
    ]
    if absent:
        raise AdoptError(f"the old database has a checkpoint but no table for them: {old.schema}.{absent}")


def fetch_forms(conn: psycopg.Connection, client: CouchClient, source: str) -> int:
    """The XForm of every live form doc adopted, from CouchDB (see the module's docstring)."""
    forms = [list(row) for row in conn.execute(LIVE_FORMS, (source,))]
    with conn.cursor() as cur:
        save_form_xml(cur, client, source, forms, [])
    return len(forms)


@contextmanager
def snapshot(postgres_url: str, old: OldReplica) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """One transaction writing the replica and one snapshot reading the old tables: the same
    connection when they are in this database. Timestamps without a zone are read as UTC."""
    with ExitStack() as stack:
        conn = stack.enter_context(psycopg.connect(postgres_url, autocommit=True))
        reader = conn if old.url is None else stack.enter_context(psycopg.connect(old.url, autocommit=True))
        for each in {id(conn): conn, id(reader): reader}.values():
            each.execute("SET TimeZone = 'UTC'")
            each.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        if reader is not conn:
            reader.read_only = True
            stack.enter_context(reader.transaction())
        yield conn, reader


@dataclass(frozen=True)
class Taken:
    """What the copying transaction committed."""

    checkpoints: dict[str, Checkpoint]  # by old source
    matched: dict[str, str]  # our source -> old source
    forms: dict[str, int]  # our source -> form docs with their XForm


def take_over(
    conn: psycopg.Connection,
    reader: psycopg.Connection,
    old: OldReplica,
    couch: Callable[[str], CouchClient],
    sources: Sequence[str],
    force: bool,
    pace: Pace,
) -> Taken:
    """Copy the rows, checkpoints and XForms of the sources in one transaction."""
    with conn.transaction():
        checkpoints = read_checkpoints(reader, old)
        matched = match_sources(checkpoints, sources)
        if not matched:
            raise AdoptError(
                f"none of the old checkpoints {sorted(checkpoints)} is for one of {list(sources)}"
            )
        lock_sources(conn, matched)
        present = [row[0] for row in conn.execute(NON_EMPTY, (list(matched),))]
        if present and not force:
            raise AdoptError(
                f"the replica already holds {present}: adopting would mix two histories "
                "(force adopts over it: the higher revision of each doc wins)"
            )
        tables = old_tables(old, matched)
        check_tables(reader, old, tables)
        if reader is not conn:
            conn.execute(STAGING_DDL)
        for table, source in tables.items():
            if reader is conn:
                copy_in_place(conn, old, table, source, pace)
            else:
                copy_streamed(conn, reader, old, table, source, pace)
            pace.tick(table, final=True)
        forms = {}
        for source, old_source in matched.items():
            checkpoint = checkpoints[old_source]
            conn.execute(SAVE_CHECKPOINT, (source, checkpoint.seq, checkpoint.pending))
            forms[source] = fetch_forms(conn, couch(source), source)
            pace.say(f"{source}: checkpoint {checkpoint.seq[:24]} of {old_source}, {forms[source]} forms")
    return Taken(checkpoints, matched, forms)


def adopt(
    postgres_url: str,
    old: OldReplica,
    couch: Callable[[str], CouchClient],
    sources: Sequence[str],
    *,
    all_sources: Sequence[str] = (),
    batch_size: int = 5000,
    force: bool = False,
    log: Log | None = None,
) -> AdoptResult:
    """Adopt the old tool's rows and checkpoints of `sources` (CouchDB database names), then sync
    and reconcile each; `all_sources` are every database the pipeline replicates (COUCHDB_DBS).
    Refuses a database the replica holds rows or a checkpoint of, unless `force` (then the
    higher revision of each doc wins and the old checkpoint replaces the current one)."""
    say = log or (lambda message: None)
    started = time.monotonic()
    all_sources = all_sources or sources
    refuse_public(old)
    copied = Copied()
    with snapshot(postgres_url, old) as (conn, reader):
        ensure_raw_schema(conn, all_sources)
        taken = take_over(conn, reader, old, couch, sources, force, Pace(copied, say))
    adopted = []
    for source, old_source in taken.matched.items():
        caught_up, repaired = catch_up(postgres_url, couch(source), all_sources, batch_size, say)
        adopted.append(
            AdoptedSource(
                source,
                old_source,
                taken.checkpoints[old_source].seq,
                rows=copied.rows.get(source, 0),
                live_rows=copied.live.get(source, 0),
                forms=taken.forms[source],
                caught_up=caught_up,
                repaired=repaired,
            )
        )
    return AdoptResult(
        adopted,
        absent=[source for source in sources if source not in taken.matched],
        ignored=sorted(old for old in taken.checkpoints if old not in taken.matched.values()),
        seconds=time.monotonic() - started,
    )


def when_unlocked(action: Callable[[], T], source: str) -> T:
    """Run `action`, waiting while another sync of the source holds its lock: the one the
    Dagster sensor may start as soon as the adopted checkpoint commits, or the last one's, whose
    lock goes with its server process just after its connection closed."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return action()
        except SyncAlreadyRunning as exc:
            if time.monotonic() > deadline:
                raise AdoptError(f"{source}: adopted, but not synced and reconciled: {exc}") from None
            time.sleep(LOCK_POLL_SECONDS)


def catch_up(
    postgres_url: str, client: CouchClient, all_sources: Sequence[str], batch_size: int, say: Log
) -> tuple[int, Repair]:
    """Sync what changed since the adopted checkpoint, then reconcile with CouchDB: fetch what
    the old tool's checkpoint claims without holding, tombstone what CouchDB no longer has.
    Returns the changes synced and the repair."""
    source = client.db
    synced = when_unlocked(
        partial(
            replicate_database,
            postgres_url,
            client,
            source=source,
            all_sources=all_sources,
            batch_size=batch_size,
        ),
        source,
    )
    say(f"{source}: {synced.progress.changes:,} changes since the adopted checkpoint synced")
    try:
        found, repaired = when_unlocked(partial(repair, postgres_url, client, source, log=say), source)
    except ReconcileError as exc:
        raise AdoptError(f"{source}: adopted and synced, but not reconciled: {exc}") from None
    say(found.summary())
    return synced.progress.changes, repaired
