"""Push a generated deployment (and its mutation rounds) into CouchDB through ``_bulk_docs``.

Every write uses ``new_edits=false`` with the deterministic ``_rev`` / ``_revisions`` the generator
computes, the way CouchDB replication writes: loading twice, or applying a round twice, is a no-op,
and a round can be applied in a later process without reading anything back.

Generation runs in the calling thread while one worker thread posts the previous chunk, so the
CouchDB server and the generator work at the same time. Memory stays flat: one chunk per
database is buffered, plus at most ``_QUEUE_DEPTH`` chunks waiting to be sent.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cht_assets.demo.generator import DATABASES, USERS, Deployment, Doc, Mutation, generate

DEFAULT_CHUNK_SIZE = 2_000
_QUEUE_DEPTH = 2
_KEPT_ERRORS = 20


class BulkClient(Protocol):
    """The part of ``cht_assets.couch.client.CouchClient`` the loader uses (one database)."""

    def create_db(self) -> None: ...

    def db_info(self) -> dict[str, Any]: ...

    def bulk_docs(self, docs: list[dict[str, Any]], *, new_edits: bool = True) -> list[dict[str, Any]]: ...


ClientFactory = Callable[[str], BulkClient]
"""Database name (``medic-sentinel``) -> client for that database."""


@dataclass(frozen=True)
class Progress:
    """Reported after every chunk CouchDB accepted (from the worker thread)."""

    phase: str
    docs: int
    elapsed_s: float
    estimated_total: int | None = None

    @property
    def rate(self) -> float:
        """Docs per second so far."""
        return self.docs / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.estimated_total or self.rate <= 0:
            return None
        return max(0.0, (self.estimated_total - self.docs) / self.rate)


ProgressCallback = Callable[[Progress], None]


@dataclass
class DatabaseSummary:
    name: str
    written: int = 0
    errors: int = 0
    doc_count: int | None = None
    """``doc_count`` from ``GET /{db}`` after the phase (live docs, deleted ones excluded)."""


@dataclass
class LoadReport:
    phase: str
    databases: dict[str, DatabaseSummary]
    seconds: float = 0.0
    errors: list[dict[str, Any]] = field(default_factory=list)
    """The first rows CouchDB rejected, with the database they were written to."""

    @property
    def written(self) -> int:
        return sum(db.written for db in self.databases.values())

    @property
    def error_count(self) -> int:
        return sum(db.errors for db in self.databases.values())


def database_name(prefix: str, suffix: str) -> str:
    """``("demo", "medic-sentinel")`` -> ``demo-sentinel``; the main database is the prefix.
    ``_users`` is the server's for the default prefix ``medic``; under another prefix it is
    ``<prefix>-users``, so that deployments sharing a server (tests, trials) keep their users apart."""
    if suffix == "medic":
        return prefix
    if suffix == USERS:
        return USERS if prefix == "medic" else f"{prefix}-users"
    return prefix + suffix[len("medic") :]


def couch_clients(server_url: str, *, timeout: float = 120.0) -> ClientFactory:
    """A factory of real ``CouchClient``s for ``server_url`` (which may carry user:password@)."""
    from cht_assets.couch.client import CouchClient

    def factory(db: str) -> BulkClient:
        return CouchClient(server_url, db, timeout=timeout)

    return factory


class _Sender:
    """Posts chunks from a queue in a worker thread; errors surface in the producing thread."""

    def __init__(
        self,
        clients: dict[str, BulkClient],
        report: LoadReport,
        progress: ProgressCallback | None,
        estimated_total: int | None,
    ) -> None:
        self.clients = clients
        self.report = report
        self.progress = progress
        self.estimated_total = estimated_total
        self.queue: queue.Queue[tuple[str, list[Doc]] | None] = queue.Queue(_QUEUE_DEPTH)
        self.failure: BaseException | None = None
        self.started = time.monotonic()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, name="cht-demo-loader", daemon=True)
        self.thread.start()

    def submit(self, suffix: str, docs: list[Doc]) -> None:
        if self.failure is not None:
            raise self.failure
        self.queue.put((suffix, docs))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.failure is not None:
            raise self.failure

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.failure is not None:
                continue  # drain, so the producer never blocks on a dead consumer
            try:
                self._send(*item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producing thread
                self.failure = exc

    def _send(self, suffix: str, docs: list[Doc]) -> None:
        rows = self.clients[suffix].bulk_docs(docs, new_edits=False)
        summary = self.report.databases[suffix]
        summary.written += len(docs)
        for row in rows:
            if "error" in row:
                summary.errors += 1
                if len(self.report.errors) < _KEPT_ERRORS:
                    self.report.errors.append({"db": summary.name, **row})
        self.sent += len(docs)
        if self.progress is not None:
            elapsed = time.monotonic() - self.started
            self.progress(Progress(self.report.phase, self.sent, elapsed, self.estimated_total))


def _open_clients(
    client_factory: ClientFactory, db_prefix: str, create: bool
) -> tuple[dict[str, BulkClient], dict[str, DatabaseSummary]]:
    clients: dict[str, BulkClient] = {}
    summaries: dict[str, DatabaseSummary] = {}
    for suffix in DATABASES:
        name = database_name(db_prefix, suffix)
        clients[suffix] = client_factory(name)
        summaries[suffix] = DatabaseSummary(name)
        if create:
            clients[suffix].create_db()
    return clients, summaries


def _finish(report: LoadReport, clients: dict[str, BulkClient], started: float) -> LoadReport:
    for suffix, client in clients.items():
        report.databases[suffix].doc_count = client.db_info().get("doc_count")
    report.seconds = time.monotonic() - started
    return report


def load_deployment(
    client_factory: ClientFactory,
    deployment: Deployment | tuple[int, int],
    *,
    db_prefix: str = "medic",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
    create: bool = True,
) -> LoadReport:
    """Create the four databases (unless ``create=False``) and write every generated doc.

    ``deployment`` is a ``Deployment`` or ``(seed, households)``. Returns per-database counts;
    rejected rows are counted and the first ones kept in ``LoadReport.errors``.
    """
    if not isinstance(deployment, Deployment):
        deployment = generate(*deployment)
    started = time.monotonic()
    clients, summaries = _open_clients(client_factory, db_prefix, create)
    report = LoadReport("load", summaries)
    estimate = sum(deployment.estimate_counts().values())
    sender = _Sender(clients, report, progress, estimate)
    buffers: dict[str, list[Doc]] = {suffix: [] for suffix in DATABASES}
    try:
        for unit in deployment.units():
            for suffix, docs in unit.docs.items():
                buffer = buffers[suffix]
                buffer.extend(deployment.write_body(doc) for doc in docs)
                while len(buffer) >= chunk_size:
                    sender.submit(suffix, buffer[:chunk_size])
                    del buffer[:chunk_size]
        for suffix, buffer in buffers.items():
            if buffer:
                sender.submit(suffix, buffer)
    finally:
        sender.close()
    return _finish(report, clients, started)


def _mutation_batches(deployment: Deployment, mutations: Iterable[Mutation]) -> list[tuple[str, list[Doc]]]:
    """First every mutation's first doc, then the competing branches of the conflicts."""
    first: dict[str, list[Doc]] = {suffix: [] for suffix in DATABASES}
    branches: dict[str, list[Doc]] = {suffix: [] for suffix in DATABASES}
    for mutation in mutations:
        head, *rest = mutation.docs
        first[mutation.db].append(deployment.write_body(head))
        branches[mutation.db].extend(deployment.write_body(doc) for doc in rest)
    batches = [(db, docs) for db, docs in first.items() if docs]
    return batches + [(db, docs) for db, docs in branches.items() if docs]


def apply_mutations(
    client_factory: ClientFactory,
    deployment: Deployment | tuple[int, int],
    round_no: int,
    *,
    db_prefix: str = "medic",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
) -> LoadReport:
    """Apply mutation round ``round_no`` (see ``Deployment.mutations``) to loaded databases."""
    if not isinstance(deployment, Deployment):
        deployment = generate(*deployment)
    started = time.monotonic()
    mutations = deployment.mutations(round_no)
    clients, summaries = _open_clients(client_factory, db_prefix, create=False)
    report = LoadReport(f"mutations round {round_no}", summaries)
    batches = _mutation_batches(deployment, mutations)
    total = sum(len(docs) for _, docs in batches)
    sender = _Sender(clients, report, progress, total)
    try:
        for suffix, docs in batches:
            for start in range(0, len(docs), chunk_size):
                sender.submit(suffix, docs[start : start + chunk_size])
    finally:
        sender.close()
    return _finish(report, clients, started)
