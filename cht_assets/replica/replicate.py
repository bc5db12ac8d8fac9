"""Incremental CouchDB -> PostgreSQL replication of one database.

Each batch is one `_changes` page: streamed to PostgreSQL, split into docs and merged into
`raw.couchdb_docs` there, and checkpointed in the same transaction: a crash at any point rolls
the whole batch back, and the rerun starts from the last committed seq. Replayed changes are
idempotent upserts, and a row whose revision did not change is not rewritten.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from cht_assets.couch.client import CouchClient
from cht_assets.couch.errors import CouchError, CouchUnavailable
from cht_assets.replica.docs import USER_SECRET_FIELDS, to_json, xform_attachment
from cht_assets.replica.pages import ChangesPager, Page
from cht_assets.replica.schema import WRITE_LOCK_KEY, ensure_raw_schema

STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS couchdb_page (body text NOT NULL) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS couchdb_changes (ord bigint NOT NULL, change jsonb NOT NULL) ON COMMIT DELETE ROWS;
-- A page lives for one transaction: compressing it would only burn CPU.
ALTER TABLE couchdb_page ALTER body SET STORAGE EXTERNAL;
"""
COPY_PAGE = "COPY couchdb_page (body) FROM STDIN (FORMAT binary)"
COPY_CHANGES = "COPY couchdb_changes (ord, change) FROM STDIN"
# The change rows of a whole page, split by PostgreSQL's JSON parser: far cheaper than parsing
# the page in Python and having PostgreSQL parse every doc again. (`json` only checks the page;
# each row is parsed once, into jsonb; OFFSET 0 keeps the planner from inlining the cast into
# every place that uses it.)
PAGE_CHANGES = sql.SQL(
    "(SELECT r.ord, r.value::jsonb AS change FROM couchdb_page AS p, "
    "json_array_elements(p.body::json -> 'results') WITH ORDINALITY AS r (value, ord) OFFSET 0)"
)
ROW_CHANGES = sql.SQL("couchdb_changes")
# One statement per page: each change row becomes the stored doc (the winning revision without
# _conflicts, which get their own column; a stub for a deleted doc sent without a body; no
# password hashes of _users docs), is merged into the raw table, and the page is summed up.
# A sharded CouchDB may list a doc twice in one page; the last listing is the newest. A row whose
# revision and conflicts did not change is not rewritten.
STORE_CHANGES = sql.SQL("""
WITH staged AS MATERIALIZED (
    SELECT
        c.ord, c.change ->> 'id' AS _id, c.rev AS _rev,
        coalesce(c.change ->> 'deleted' = 'true' OR c.doc ->> '_deleted' = 'true', false) AS _deleted,
        CASE WHEN jsonb_typeof(c.doc -> '_conflicts') = 'array'
            THEN ARRAY(SELECT jsonb_array_elements_text(c.doc -> '_conflicts')) END AS _conflicts,
        CASE
            WHEN jsonb_typeof(c.doc) IS DISTINCT FROM 'object'
                THEN jsonb_build_object('_id', c.change ->> 'id', '_rev', c.rev, '_deleted', true)
            WHEN c.doc ->> 'type' = 'user' OR c.change ->> 'id' LIKE 'org.couchdb.user:%%'
                THEN c.doc - '_conflicts' - %(secrets)s::text[]
            WHEN c.doc ? '_conflicts' THEN c.doc - '_conflicts'
            ELSE c.doc
        END AS doc
    FROM (
        SELECT ord, change, change -> 'doc' AS doc,
               coalesce(change #>> '{{doc,_rev}}', change #>> '{{changes,0,rev}}') AS rev
        FROM {changes} AS changes
        OFFSET 0  -- computed once per row: the planner would otherwise repeat each use of `doc`
    ) AS c
),
prior AS MATERIALIZED (  -- the rows as they were before this statement (same snapshot)
    SELECT d._id, d._deleted FROM raw.couchdb_docs AS d
    WHERE d.source = %(source)s AND d._id IN (SELECT _id FROM staged)
),
merged AS (
    INSERT INTO raw.couchdb_docs AS d (source, _id, _rev, _deleted, _conflicts, doc)
    SELECT DISTINCT ON (_id) %(source)s, _id, _rev, _deleted, _conflicts, doc
    FROM staged ORDER BY _id, ord DESC
    ON CONFLICT (source, _id) DO UPDATE
    SET _rev = excluded._rev, _deleted = excluded._deleted, _conflicts = excluded._conflicts, doc = excluded.doc,
        saved_timestamp = clock_timestamp(), change_seq = nextval('raw.couchdb_change_seq')
    WHERE d._rev IS DISTINCT FROM excluded._rev OR d._conflicts IS DISTINCT FROM excluded._conflicts
    RETURNING d._id, d._deleted
)
SELECT
    (SELECT count(*) FROM staged),
    (SELECT count(*) FROM staged WHERE _deleted),
    (SELECT count(*) FROM merged),
    (SELECT coalesce(jsonb_agg(jsonb_build_array(_id, _rev, doc -> '_attachments')), '[]')
     FROM staged WHERE doc ->> 'type' = 'form' AND NOT _deleted),
    (SELECT coalesce(array_agg(_id), '{{}}') FROM staged WHERE _deleted),
    (SELECT count(*) FROM merged AS m WHERE NOT EXISTS (SELECT 1 FROM prior AS p WHERE p._id = m._id)),
    (SELECT coalesce(sum((NOT m._deleted)::int - coalesce((NOT p._deleted)::int, 0)), 0)
     FROM merged AS m LEFT JOIN prior AS p ON p._id = m._id)
""")
# Pages above this size are parsed in Python row by row, so PostgreSQL never holds one whole.
WHOLE_PAGE_MAX_BYTES = 64 * 1024 * 1024
BINARY_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
BINARY_COPY_TRAILER = struct.pack(">h", -1)
SAVE_FORM_XML = """
INSERT INTO raw.couchdb_form_xml (source, _id, _rev, attachment, xml) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (source, _id) DO UPDATE SET _rev = excluded._rev, attachment = excluded.attachment, xml = excluded.xml
"""
DELETE_FORM_XML = "DELETE FROM raw.couchdb_form_xml WHERE source = %s AND _id = ANY(%s)"
SAVE_CHECKPOINT = """
INSERT INTO raw.couchdb_progress (source, seq, pending, updated_at)
VALUES (%(source)s, %(seq)s, %(pending)s, now())
ON CONFLICT (source) DO UPDATE SET seq = excluded.seq, pending = excluded.pending, updated_at = now(),
    docs = couchdb_progress.docs + %(added)s, live_docs = couchdb_progress.live_docs + %(live_delta)s
"""


MAX_RETRY_DELAY = 30.0
ABSENT_STATUSES = (403, 404)


class SyncAlreadyRunning(RuntimeError):
    """Another process holds the replication lock of this source."""


@dataclass(frozen=True)
class BatchResult:
    changes: int
    written: int
    deleted: int
    cleaned: int
    last_seq: str
    pending: int | None
    cleaned_ids: tuple[str, ...] = ()  # the docs whose characters were replaced


# Doc ids kept as examples of docs whose characters were replaced (for the raw asset's check).
CLEANED_EXAMPLES = 5


@dataclass
class SyncProgress:
    """Running totals of one sync; handed to the progress callback after every batch."""

    source: str
    started: float
    batches: int = 0
    changes: int = 0
    written: int = 0
    deleted: int = 0
    cleaned: int = 0
    last_seq: str = "0"
    pending: int | None = None
    cleaned_examples: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def changes_per_second(self) -> float:
        return self.changes / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        rate = self.changes_per_second
        return self.pending / rate if self.pending and rate else None

    def add(self, batch: BatchResult) -> None:
        self.batches += 1
        self.changes += batch.changes
        self.written += batch.written
        self.deleted += batch.deleted
        self.cleaned += batch.cleaned
        self.cleaned_examples += batch.cleaned_ids[: CLEANED_EXAMPLES - len(self.cleaned_examples)]
        self.last_seq = batch.last_seq
        self.pending = batch.pending


@dataclass(frozen=True)
class SyncResult:
    progress: SyncProgress
    row_count: int
    live_count: int
    # Why there was nothing to read, when CouchDB has no such database or refuses this user it.
    absent: str | None = None


def read_checkpoint(conn: psycopg.Connection, source: str) -> str:
    row = conn.execute("SELECT seq FROM raw.couchdb_progress WHERE source = %s", (source,)).fetchone()
    return row[0] if row else "0"


@dataclass(frozen=True)
class Stored:
    changes: int
    deleted: int
    written: int
    forms: list[list]
    deleted_ids: list[str]
    added: int  # rows new to the table
    live_delta: int  # change in the number of live (not deleted) rows


def store(cur: psycopg.Cursor, changes: sql.Composable, source: str) -> Stored:
    query = STORE_CHANGES.format(changes=changes)
    return Stored(*cur.execute(query, {"secrets": list(USER_SECRET_FIELDS), "source": source}).fetchone())


def store_whole_page(cur: psycopg.Cursor, page: Page, source: str) -> Stored | None:
    """Hand the page to PostgreSQL as one text value (binary COPY: no escaping) and store its
    rows from there. None when PostgreSQL refuses the JSON (\\u0000, lone surrogates, bad UTF-8)."""
    if page.size > WHOLE_PAGE_MAX_BYTES:
        return None
    try:
        with cur.connection.transaction():
            with cur.copy(COPY_PAGE) as copy:
                copy.write(BINARY_COPY_HEADER + struct.pack(">hi", 1, page.size))
                for chunk in page.chunks():
                    copy.write(chunk)
                copy.write(BINARY_COPY_TRAILER)
            return store(cur, PAGE_CHANGES, source)
    except psycopg.DataError:  # class 22: invalid JSON text, \\u0000, bad encoding
        return None


def store_rows(cur: psycopg.Cursor, page: Page, source: str) -> tuple[Stored, list[str]]:
    """The slow path: parse in Python, replace what jsonb cannot hold, one row at a time.
    Also returns the ids of the rows that needed cleaning."""
    cleaned: list[str] = []
    with cur.copy(COPY_CHANGES) as copy:
        for ordinal, change in enumerate(page.changes(), start=1):
            text, was_cleaned = to_json(change)
            copy.write_row((ordinal, text))
            if was_cleaned:
                cleaned.append(str(change.get("id")))
    return store(cur, ROW_CHANGES, source), cleaned


def replicate_page(conn: psycopg.Connection, client: CouchClient, page: Page, source: str) -> BatchResult:
    """Copy one `_changes` page into the raw table and move the checkpoint, atomically."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (WRITE_LOCK_KEY,))
        stored, cleaned = store_whole_page(cur, page, source), []
        if stored is None:
            stored, cleaned = store_rows(cur, page, source)
        save_form_xml(cur, client, source, stored.forms, stored.deleted_ids)
        pending = page.pending
        if pending is None and stored.changes < page.limit:
            pending = 0  # PouchDB does not report pending; a short page means we caught up.
        if page.last_seq != page.since or stored.written:
            cur.execute(
                SAVE_CHECKPOINT,
                {
                    "source": source,
                    "seq": page.last_seq,
                    "pending": pending,
                    "added": stored.added,
                    "live_delta": stored.live_delta,
                },
            )
    return BatchResult(
        stored.changes, stored.written, stored.deleted, len(cleaned), page.last_seq, pending, tuple(cleaned)
    )


def save_form_xml(
    cur: psycopg.Cursor,
    client: CouchClient,
    source: str,
    forms: list[list],
    retired: list[str],
) -> None:
    """Keep each form's XForm next to its doc; the formviews are generated from it.
    `forms` holds [id, rev, _attachments] of the live form docs of the batch."""
    for doc_id, rev, attachments in forms:
        attachment = xform_attachment({"type": "form", "_attachments": attachments})
        if attachment is None:
            continue
        try:
            content = client.get_attachment(doc_id, attachment)
        except CouchError as exc:
            if exc.status != 404:  # 404: the form changed again since; its next change brings it
                raise
            continue
        xml = content.decode("utf-8", errors="replace").replace("\x00", "")
        cur.execute(SAVE_FORM_XML, (source, doc_id, rev, attachment, xml))
    if retired:
        cur.execute(DELETE_FORM_XML, (source, retired))


def count_rows(conn: psycopg.Connection, source: str) -> tuple[int, int]:
    """The source's rows and live rows, as kept in its progress row; counted (once) when unknown."""
    row = conn.execute(
        "SELECT docs, live_docs FROM raw.couchdb_progress WHERE source = %s", (source,)
    ).fetchone()
    if row and row[0] is not None and row[1] is not None:
        return row[0], row[1]
    # The caller holds the source's sync lock: no page of this source commits meanwhile.
    with conn.transaction():
        total, live = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT _deleted) FROM raw.couchdb_docs WHERE source = %s",
            (source,),
        ).fetchone()
        conn.execute(
            "UPDATE raw.couchdb_progress SET docs = %s, live_docs = %s WHERE source = %s",
            (total, live, source),
        )
    return total, live


def drain(
    conn: psycopg.Connection,
    client: CouchClient,
    source: str,
    batch_size: int,
    progress: SyncProgress,
    on_batch: Callable[[SyncProgress], None] | None,
) -> None:
    """Store pages from the checkpoint on until the feed is drained."""
    with ChangesPager(client, progress.last_seq, batch_size) as pager:
        for page in pager:
            try:
                batch = replicate_page(conn, client, page, source)
            finally:
                page.close()
            progress.add(batch)
            if on_batch:
                on_batch(progress)
            if batch.changes == 0:
                return


def replicate_database(
    postgres_url: str,
    client: CouchClient,
    *,
    source: str,
    all_sources: Sequence[str],
    batch_size: int = 5000,
    attempts: int = 5,
    base_delay: float = 1.0,
    on_batch: Callable[[SyncProgress], None] | None = None,
    on_retry: Callable[[int, Exception, float], None] | None = None,
) -> SyncResult:
    """Replicate `client.db` into the raw table under `source` until the feed is drained."""
    progress = SyncProgress(source=source, started=time.monotonic())
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        # A commit lost in a PostgreSQL crash loses its rows and its checkpoint together, and the
        # next sync fetches them again: no need to wait for each batch's WAL flush.
        conn.execute("SET synchronous_commit = off")
        ensure_raw_schema(conn, all_sources)
        conn.execute(STAGING_DDL)
        locked = conn.execute(
            "SELECT pg_try_advisory_lock(hashtext('cht_assets.sync'), hashtext(%s))", (source,)
        )
        if not locked.fetchone()[0]:
            raise SyncAlreadyRunning(f"another sync of CouchDB database '{source}' is running")
        progress.last_seq = read_checkpoint(conn, source)
        failures = 0
        absent = None
        while True:
            try:
                drain(conn, client, source, batch_size, progress, on_batch)
                break
            except CouchUnavailable as exc:
                # Nothing of the failed page was committed; start again from the checkpoint.
                failures += 1
                if failures >= attempts:
                    raise
                delay = min(MAX_RETRY_DELAY, base_delay * 2 ** (failures - 1))
                if on_retry:
                    on_retry(failures, exc, delay)
                time.sleep(delay)
            except CouchError as exc:
                if exc.status not in ABSENT_STATUSES:
                    raise
                # Not there (404), or not readable by this user (403: `_users` needs an admin):
                # nothing to replicate, a state to report; rows kept from before stay.
                absent = str(exc)
                break
        row_count, live_count = count_rows(conn, source)
    return SyncResult(progress, row_count, live_count, absent)
