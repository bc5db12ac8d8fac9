"""What the analytics database knows: each CouchDB database's checkpoint, each view-layer
object's last refresh. Read in one read-only transaction with short timeouts; a warehouse that
was never synced or refreshed has no rows, which is not an error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_MS = 5000
PROGRESS = "SELECT source, seq, pending, updated_at, docs FROM raw.couchdb_progress ORDER BY source"
REFRESH_STATE = (
    "SELECT object, layer, kind, row_count, refreshed_at FROM cht_meta.refresh_state ORDER BY object"
)


@dataclass(frozen=True)
class Progress:
    """One row of raw.couchdb_progress: the sync checkpoint of a CouchDB database."""

    source: str
    seq: str
    pending: int | None
    updated_at: datetime
    docs: int | None  # rows kept for the source, tombstones included; None until counted


@dataclass(frozen=True)
class ObjectState:
    """One row of cht_meta.refresh_state: a view-layer object's last refresh."""

    name: str
    layer: str
    kind: str
    row_count: int | None  # kept for incremental tables only: views are never counted
    refreshed_at: datetime


@dataclass(frozen=True)
class PostgresSnapshot:
    progress: list[Progress]
    objects: list[ObjectState]


def exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()[0]


def read_postgres(conninfo: str) -> PostgresSnapshot:
    with psycopg.connect(
        conninfo,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name="cht-metrics",
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c default_transaction_read_only=on",
    ) as conn:
        progress = conn.execute(PROGRESS).fetchall() if exists(conn, "raw.couchdb_progress") else []
        objects = conn.execute(REFRESH_STATE).fetchall() if exists(conn, "cht_meta.refresh_state") else []
    return PostgresSnapshot([Progress(*row) for row in progress], [ObjectState(*row) for row in objects])


def seq_number(seq: str) -> int | None:
    """The numeric prefix of a CouchDB seq (`123-g1AAAA…` on CouchDB 2+, `123` from PouchDB),
    as cht-sync exports it; None for a seq without one."""
    prefix = seq.split("-", 1)[0].strip()
    return int(prefix) if prefix.isdigit() else None
