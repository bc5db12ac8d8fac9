"""Incremental CouchDB -> PostgreSQL replication of one database.

Each batch is one `_changes` request, streamed row by row into a COPY, merged into
`raw.couchdb_docs` and checkpointed in the same transaction: a crash at any point rolls the
whole batch back, and the rerun starts from the last committed seq. Replayed changes are
idempotent upserts, and a row whose revision did not change is not rewritten.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from cht_assets.couch.client import CouchClient, with_retries
from cht_assets.couch.errors import CouchError
from cht_assets.replica.docs import doc_row
from cht_assets.replica.schema import WRITE_LOCK_KEY, ensure_raw_schema

STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS couchdb_batch (
    ord        integer NOT NULL,
    _id        text    NOT NULL,
    _rev       text    NOT NULL,
    _deleted   boolean NOT NULL,
    _conflicts text[],
    doc        jsonb   NOT NULL
) ON COMMIT DELETE ROWS
"""
COPY_STAGING = "COPY couchdb_batch (ord, _id, _rev, _deleted, _conflicts, doc) FROM STDIN"
# A sharded CouchDB may list a doc twice in one page; the last listing is the newest.
MERGE_STAGING = """
INSERT INTO raw.couchdb_docs AS d (source, _id, _rev, _deleted, _conflicts, doc)
SELECT DISTINCT ON (_id) %(source)s, _id, _rev, _deleted, _conflicts, doc
FROM couchdb_batch ORDER BY _id, ord DESC
ON CONFLICT (source, _id) DO UPDATE
SET _rev = excluded._rev, _deleted = excluded._deleted, _conflicts = excluded._conflicts,
    doc = excluded.doc, saved_timestamp = clock_timestamp(), change_seq = nextval('raw.couchdb_change_seq')
WHERE d._rev IS DISTINCT FROM excluded._rev
   OR d._conflicts IS DISTINCT FROM excluded._conflicts
"""
SAVE_FORM_XML = """
INSERT INTO raw.couchdb_form_xml (source, _id, _rev, attachment, xml) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (source, _id) DO UPDATE SET _rev = excluded._rev, attachment = excluded.attachment, xml = excluded.xml
"""
DELETE_FORM_XML = "DELETE FROM raw.couchdb_form_xml WHERE source = %s AND _id = ANY(%s)"
SAVE_CHECKPOINT = """
INSERT INTO raw.couchdb_progress (source, seq, pending, updated_at)
VALUES (%(source)s, %(seq)s, %(pending)s, now())
ON CONFLICT (source) DO UPDATE SET seq = excluded.seq, pending = excluded.pending, updated_at = now()
"""


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
        self.last_seq = batch.last_seq
        self.pending = batch.pending


@dataclass(frozen=True)
class SyncResult:
    progress: SyncProgress
    row_count: int
    live_count: int


def read_checkpoint(conn: psycopg.Connection, source: str) -> str:
    row = conn.execute("SELECT seq FROM raw.couchdb_progress WHERE source = %s", (source,)).fetchone()
    return row[0] if row else "0"


def replicate_batch(
    conn: psycopg.Connection, client: CouchClient, source: str, since: str, limit: int
) -> BatchResult:
    """Copy one `_changes` page into the raw table and move the checkpoint, atomically."""
    changes = deleted = cleaned = 0
    forms: list[tuple[str, str, str]] = []
    retired_forms: list[str] = []
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (WRITE_LOCK_KEY,))
        cur.execute(STAGING_DDL)
        with client.changes(since, limit) as feed:
            with cur.copy(COPY_STAGING) as copy:
                for ordinal, change in enumerate(feed.rows()):
                    row = doc_row(change)
                    copy.write_row((ordinal, row.doc_id, row.rev, row.deleted, row.conflicts, row.doc_json))
                    changes += 1
                    deleted += row.deleted
                    cleaned += row.cleaned
                    if row.xform_attachment:
                        forms.append((row.doc_id, row.rev, row.xform_attachment))
                    elif row.deleted:
                        retired_forms.append(row.doc_id)
            last_seq, pending = feed.last_seq or since, feed.pending
        cur.execute(MERGE_STAGING, {"source": source})
        written = cur.rowcount
        save_form_xml(cur, client, source, forms, retired_forms)
        if pending is None and changes < limit:
            pending = 0  # PouchDB does not report pending; a short page means we caught up.
        if last_seq != since or written:
            cur.execute(SAVE_CHECKPOINT, {"source": source, "seq": last_seq, "pending": pending})
    return BatchResult(changes, written, deleted, cleaned, last_seq, pending)


def save_form_xml(
    cur: psycopg.Cursor,
    client: CouchClient,
    source: str,
    forms: list[tuple[str, str, str]],
    retired: list[str],
) -> None:
    """Keep each form's XForm next to its doc; the formviews are generated from it."""
    for doc_id, rev, attachment in forms:
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
    total, live = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT _deleted) FROM raw.couchdb_docs WHERE source = %s",
        (source,),
    ).fetchone()
    return total, live


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
        ensure_raw_schema(conn, all_sources)
        locked = conn.execute(
            "SELECT pg_try_advisory_lock(hashtext('cht_assets.sync'), hashtext(%s))", (source,)
        )
        if not locked.fetchone()[0]:
            raise SyncAlreadyRunning(f"another sync of CouchDB database '{source}' is running")
        progress.last_seq = read_checkpoint(conn, source)
        while True:
            since = progress.last_seq
            batch = with_retries(
                lambda since=since: replicate_batch(conn, client, source, since, batch_size),
                attempts=attempts,
                base_delay=base_delay,
                on_retry=on_retry,
            )
            progress.add(batch)
            if on_batch:
                on_batch(progress)
            if batch.changes < batch_size or batch.last_seq == since or batch.pending == 0:
                break
        row_count, live_count = count_rows(conn, source)
    return SyncResult(progress, row_count, live_count)
