"""What each object was last built from: code version and raw change_seq."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

META_DDL = """
CREATE SCHEMA IF NOT EXISTS cht_meta;
CREATE TABLE IF NOT EXISTS cht_meta.refresh_state (
    object       text        PRIMARY KEY,
    layer        text        NOT NULL,
    kind         text        NOT NULL,
    code_version text        NOT NULL,
    change_seq   bigint      NOT NULL DEFAULT 0,
    row_count    bigint,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cht_meta.refresh_state IS 'Last refresh of every view-layer object.';
"""
META_LOCK_KEY = 7_146_003
# What SQL may read of it (useview_refresh_status does).
META_RELATIONS: dict[str, tuple[str, ...]] = {
    "cht_meta.refresh_state": (
        "object", "layer", "kind", "code_version", "change_seq", "row_count", "refreshed_at",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class RefreshState:
    code_version: str
    change_seq: int
    row_count: int | None
    refreshed_at: datetime


def ensure_meta_schema(conn: psycopg.Connection) -> None:
    # Checked first: the DDL takes locks and writes the catalog, on every step otherwise.
    if conn.execute("SELECT to_regclass('cht_meta.refresh_state')").fetchone()[0] is not None:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (META_LOCK_KEY,))
        conn.execute(META_DDL)


def read_state(conn: psycopg.Connection, name: str) -> RefreshState | None:
    row = conn.execute(
        "SELECT code_version, change_seq, row_count, refreshed_at FROM cht_meta.refresh_state WHERE object = %s",
        (name,),
    ).fetchone()
    return RefreshState(*row) if row else None


def save_state(
    conn: psycopg.Connection,
    name: str,
    layer: str,
    kind: str,
    code_version: str,
    change_seq: int,
    row_count: int | None,
) -> None:
    conn.execute(
        """
        INSERT INTO cht_meta.refresh_state (object, layer, kind, code_version, change_seq, row_count, refreshed_at)
        VALUES (%s, %s, %s, %s, %s, %s, now())
        ON CONFLICT (object) DO UPDATE SET layer = excluded.layer, kind = excluded.kind,
            code_version = excluded.code_version, change_seq = excluded.change_seq,
            row_count = excluded.row_count, refreshed_at = now()
        """,
        (name, layer, kind, code_version, change_seq, row_count),
    )
