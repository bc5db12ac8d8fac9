"""Helpers shared by the hostile tests: doc factories, raw-table probes, reader threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from cht_assets.couch.client import CouchClient
from cht_assets.replica.replicate import SyncResult, replicate_database
from tests.support.docs import make_docs


def load(client: CouchClient, count: int, *, chunk: int = 5000) -> None:
    for start in range(0, count, chunk):
        client.bulk_docs(make_docs(min(chunk, count - start), start))


def sync(pg_url: str, client: CouchClient, **kwargs: Any) -> SyncResult:
    kwargs.setdefault("batch_size", 200)
    kwargs.setdefault("base_delay", 0.05)
    return replicate_database(pg_url, client, source=client.db, all_sources=[client.db], **kwargs)


def change_seqs(client: CouchClient) -> dict[str, int]:
    """doc id -> seq of its last change (pouchdb-server seqs are integers)."""
    results = client._request("GET", "/_changes").json()["results"]
    return {row["id"]: int(row["seq"]) for row in results}


@dataclass(frozen=True)
class RawSnapshot:
    ids: list[str]
    seq: str | None

    @property
    def distinct(self) -> int:
        return len(set(self.ids))


def raw_snapshot(pg_url: str, source: str) -> RawSnapshot:
    """The replica's ids and checkpoint as committed (empty before the first commit), read in one
    snapshot: the backend of a sync killed with -9 may still commit its last page (the server
    learns of the death only when it next writes to the socket), and two reads on either side of
    that commit saw the new checkpoint without its rows."""
    with psycopg.connect(pg_url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        if conn.execute("SELECT to_regclass('raw.couchdb_progress')").fetchone()[0] is None:
            return RawSnapshot([], None)
        ids = [r[0] for r in conn.execute("SELECT _id FROM raw.couchdb_docs WHERE source = %s", (source,))]
        row = conn.execute("SELECT seq FROM raw.couchdb_progress WHERE source = %s", (source,)).fetchone()
    return RawSnapshot(ids, row[0] if row else None)


def assert_checkpoint_consistent(snapshot: RawSnapshot, seqs: dict[str, int]) -> None:
    """Rows and checkpoint commit together: the replica holds exactly the changes up to the
    checkpoint, each once (an initial sync: one change per doc)."""
    assert snapshot.distinct == len(snapshot.ids), "a doc stored twice"
    upto = int(snapshot.seq) if snapshot.seq is not None else 0
    expected = {doc_id for doc_id, seq in seqs.items() if seq <= upto}
    got = set(snapshot.ids)
    assert got == expected, (
        f"checkpoint {snapshot.seq}: {len(got - expected)} rows beyond it, {len(expected - got)} missing below it"
    )


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")


def backend_waiting_on_lock(admin_url: str, query_like: str) -> bool:
    """A session (not ours) is blocked on a lock while running a statement matching `query_like`."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s "
            "AND pid <> pg_backend_pid()",
            (query_like,),
        ).fetchone()
    return row[0] > 0


@dataclass
class ReaderStats:
    queries: int = 0
    errors: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    # relation -> every count seen
    seen: dict[str, set[int]] = field(default_factory=dict)


class Readers:
    """`n` threads, each with its own connection, counting the rows of `relations` in turn
    until stopped (or `max_seconds`). Records errors and empty answers."""

    def __init__(
        self,
        pg_url: str,
        relations: Iterable[str],
        n: int = 20,
        pause: float = 0.01,
        max_seconds: float = 180,
    ) -> None:
        self.pg_url, self.relations, self.n, self.pause = pg_url, list(relations), n, pause
        self.max_seconds = max_seconds
        self.stats = ReaderStats()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(n)]

    def run(self, index: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        try:
            conn = psycopg.connect(self.pg_url, autocommit=True)
        except psycopg.Error as exc:
            with self.lock:
                self.stats.errors.append(f"reader {index} connect: {exc}")
            return
        with conn:
            turn = index
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                relation = self.relations[turn % len(self.relations)]
                turn += 1
                try:
                    count = conn.execute(f'SELECT count(*) FROM "{relation}"').fetchone()[0]
                except psycopg.Error as exc:
                    with self.lock:
                        self.stats.errors.append(f"{relation}: {type(exc).__name__}: {exc}".strip())
                    continue
                with self.lock:
                    self.stats.queries += 1
                    self.stats.seen.setdefault(relation, set()).add(count)
                    if count == 0:
                        self.stats.empty.append(relation)
                time.sleep(self.pause)

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)
        stuck = sum(thread.is_alive() for thread in self.threads)
        if stuck and exc_type is None:
            raise AssertionError(f"{stuck} readers still querying 30 s after the stop: stats unsettled")


def activity(admin_url: str) -> list[tuple]:
    """What every other session is doing (for failure messages)."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        return conn.execute(
            "SELECT state, wait_event_type, wait_event, left(query, 120) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
