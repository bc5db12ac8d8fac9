"""Reconciliation: the full id set of a CouchDB database against the live rows of its replica.

The `_changes` feed never shows a purge (CouchDB's `_purge`, CHT's archiving): a purged doc
stays live in `raw.couchdb_docs` for ever, and a row lost on the PostgreSQL side is never sent
again. Only comparing `_all_docs` with the replica finds either.

    missing  live in CouchDB, not live in the replica
    extra    live in the replica, not in CouchDB (purged there)

Differences explained by changes not replicated yet are not discrepancies: the replica is read
at one snapshot with its checkpoint, CouchDB's ids after it, then every id changed since the
checkpoint is set aside. `repair` fixes what `reconcile` finds, never on its own: re-fetches the
missing docs (stored exactly as replication stores them) and turns the extra rows into
tombstones, so the views drop them on their next refresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from cht_assets.couch.client import CouchClient
from cht_assets.replica.docs import to_json
from cht_assets.replica.replicate import (
    COPY_CHANGES,
    DELETE_FORM_XML,
    ROW_CHANGES,
    STAGING_DDL,
    SyncAlreadyRunning,
    read_checkpoint,
    save_form_xml,
    store,
)
from cht_assets.replica.schema import WRITE_LOCK_KEY

EXAMPLES = 10
PENDING_LIMIT = 100_000
FETCH_BATCH = 500
TOMBSTONE_BATCH = 5_000
# Above this share of the live rows, `repair` refuses to tombstone without `force`: that many
# purges at once is more likely a wrong COUCHDB_URL or database than an archiving run.
MAX_EXTRA_FRACTION = 0.10

ID_TABLES = """
CREATE TEMP TABLE reconcile_couch_ids (_id text PRIMARY KEY) ON COMMIT DROP;
CREATE TEMP TABLE reconcile_pending_ids (_id text PRIMARY KEY) ON COMMIT DROP;
"""
MISSING = """
SELECT c._id FROM reconcile_couch_ids AS c
WHERE NOT EXISTS (SELECT 1 FROM raw.couchdb_docs AS d WHERE d.source = %(source)s AND d._id = c._id AND NOT d._deleted)
  AND NOT EXISTS (SELECT 1 FROM reconcile_pending_ids AS p WHERE p._id = c._id)
ORDER BY c._id
"""
EXTRA = """
SELECT d._id FROM raw.couchdb_docs AS d
WHERE d.source = %(source)s AND NOT d._deleted
  AND NOT EXISTS (SELECT 1 FROM reconcile_couch_ids AS c WHERE c._id = d._id)
  AND NOT EXISTS (SELECT 1 FROM reconcile_pending_ids AS p WHERE p._id = d._id)
ORDER BY d._id
"""
TOMBSTONE = """
UPDATE raw.couchdb_docs
SET _deleted = true, doc = doc || '{"_deleted": true}'::jsonb,
    saved_timestamp = clock_timestamp(), change_seq = nextval('raw.couchdb_change_seq')
WHERE source = %s AND _id = ANY(%s) AND NOT _deleted
"""

# A repair writes rows outside replication's page accounting: the next sync counts again.
FORGET_COUNTS = "UPDATE raw.couchdb_progress SET docs = NULL, live_docs = NULL WHERE source = %s"

Log = Callable[[str], None]


class ReconcileError(RuntimeError):
    """Reconciliation could not conclude (replica too far behind) or repair was refused."""


@dataclass(frozen=True)
class Reconciliation:
    source: str
    couch_docs: int
    raw_live: int
    pending_changes: int
    missing: list[str] = field(repr=False)
    extra: list[str] = field(repr=False)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra

    def summary(self) -> str:
        if self.ok:
            return (
                f"{self.source}: {self.couch_docs:,} docs in CouchDB, {self.raw_live:,} live rows: "
                f"they match ({self.pending_changes:,} changes not replicated yet set aside)"
            )
        return (
            f"{self.source}: {len(self.missing):,} missing from the replica (e.g. {self.missing[:3]}), "
            f"{len(self.extra):,} extra in the replica, not in CouchDB (e.g. {self.extra[:3]})"
        )


@dataclass(frozen=True)
class Repair:
    source: str
    fetched: int
    tombstoned: int
    gone: int  # missing ids that had disappeared from CouchDB by the time they were fetched
    fetched_ids: list[str] = field(repr=False)
    tombstoned_ids: list[str] = field(repr=False)

    @property
    def changed(self) -> bool:
        return bool(self.fetched or self.tombstoned)


def copy_ids(conn: psycopg.Connection, table: str, ids: Iterable[str]) -> int:
    count = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} (_id) FROM STDIN") as copy:
        for doc_id in ids:
            copy.write_row((doc_id,))
            count += 1
    return count


def pending_ids(client: CouchClient, since: str, limit: int) -> list[str]:
    ids, _ = client.changed_ids(since, limit=limit)
    if len(ids) >= limit:
        raise ReconcileError(
            f"{client.db}: the replica is more than {limit:,} changes behind CouchDB; replicate first"
        )
    return ids


def unique(ids: Iterable[str]) -> Iterator[str]:
    seen: set[str] = set()
    for doc_id in ids:
        if doc_id not in seen:
            seen.add(doc_id)
            yield doc_id


def reconcile(
    postgres_url: str,
    client: CouchClient,
    source: str,
    *,
    pending_limit: int = PENDING_LIMIT,
    log: Log | None = None,
) -> Reconciliation:
    """Compare every id of `client.db` with the live rows of `source`; lists every difference."""
    started = time.monotonic()
    with psycopg.connect(postgres_url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        try:
            since = read_checkpoint(conn, source)  # the snapshot starts here
        except psycopg.errors.UndefinedTable:
            raise ReconcileError(f"{source}: no replica yet (raw.couchdb_docs does not exist)") from None
        raw_live = conn.execute(
            "SELECT count(*) FROM raw.couchdb_docs WHERE source = %s AND NOT _deleted", (source,)
        ).fetchone()[0]
        conn.execute(ID_TABLES)
        couch_docs = copy_ids(conn, "reconcile_couch_ids", client.all_doc_ids())
        if log:
            log(f"{source}: {couch_docs:,} ids in CouchDB, {raw_live:,} live rows in the replica")
        pending = pending_ids(client, since, pending_limit)
        copy_ids(conn, "reconcile_pending_ids", unique(pending))
        missing = [row[0] for row in conn.execute(MISSING, {"source": source})]
        extra = [row[0] for row in conn.execute(EXTRA, {"source": source})]
        conn.rollback()
    return Reconciliation(
        source, couch_docs, raw_live, len(pending), missing, extra, time.monotonic() - started
    )


def change_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """An `_all_docs` row as the `_changes` row replication stores; None when CouchDB has no such doc."""
    if "error" in row or "value" not in row:
        return None
    rev = row["value"]["rev"]
    change: dict[str, Any] = {"id": row["id"], "changes": [{"rev": rev}]}
    if row["value"].get("deleted"):
        change["deleted"] = True
    elif row.get("doc"):
        change["doc"] = row["doc"]
    return change


def batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def store_docs(conn: psycopg.Connection, client: CouchClient, source: str, changes: list[dict]) -> int:
    """Store change rows exactly as replication does (one transaction); returns rows written."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (WRITE_LOCK_KEY,))
        with cur.copy(COPY_CHANGES) as copy:
            for ordinal, change in enumerate(changes, start=1):
                copy.write_row((ordinal, to_json(change)[0]))
        stored = store(cur, ROW_CHANGES, source)
        save_form_xml(cur, client, source, stored.forms, stored.deleted_ids)
        cur.execute(FORGET_COUNTS, (source,))
    return stored.written


def tombstone(conn: psycopg.Connection, source: str, ids: list[str]) -> int:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (WRITE_LOCK_KEY,))
        count = conn.execute(TOMBSTONE, (source, ids)).rowcount
        conn.execute(DELETE_FORM_XML, (source, ids))
        conn.execute(FORGET_COUNTS, (source,))
    return count


def repair(
    postgres_url: str,
    client: CouchClient,
    source: str,
    *,
    force: bool = False,
    max_extra_fraction: float = MAX_EXTRA_FRACTION,
    log: Log | None = None,
) -> tuple[Reconciliation, Repair]:
    """Reconcile again, then fix what it finds; holds the source's sync lock meanwhile, so no
    replication of the same database runs at the same time."""
    say = log or (lambda message: None)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        locked = conn.execute(
            "SELECT pg_try_advisory_lock(hashtext('cht_assets.sync'), hashtext(%s))", (source,)
        ).fetchone()[0]
        if not locked:
            raise SyncAlreadyRunning(f"a sync of CouchDB database '{source}' is running; repair later")
        found = reconcile(postgres_url, client, source, log=log)
        if found.ok:
            return found, Repair(source, 0, 0, 0, [], [])
        limit = max(1, int(found.raw_live * max_extra_fraction))
        if len(found.extra) > limit and not force:
            raise ReconcileError(
                f"{source}: {len(found.extra):,} of {found.raw_live:,} live rows are not in CouchDB; "
                f"refusing to tombstone more than {max_extra_fraction:.0%} without force "
                "(check COUCHDB_URL and COUCHDB_DBS first)"
            )
        conn.execute(STAGING_DDL)
        fetched_ids, gone = [], 0
        for batch in batches(found.missing, FETCH_BATCH):
            changes = [change for row in client.rows_for_ids(batch) if (change := change_row(row))]
            gone += len(batch) - len(changes)
            if changes:
                store_docs(conn, client, source, changes)
                fetched_ids += [change["id"] for change in changes]
            say(f"{source}: fetched {len(fetched_ids):,} of {len(found.missing):,} missing docs")
        tombstoned = 0
        for batch in batches(found.extra, TOMBSTONE_BATCH):
            tombstoned += tombstone(conn, source, batch)
            say(f"{source}: marked {tombstoned:,} of {len(found.extra):,} extra rows deleted")
    return found, Repair(source, len(fetched_ids), tombstoned, gone, fetched_ids, found.extra)
