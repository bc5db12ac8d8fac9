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
-- Where the object is (BASE_SCHEMA moves the base models); added after the first release.
ALTER TABLE cht_meta.refresh_state ADD COLUMN IF NOT EXISTS schema text NOT NULL DEFAULT 'public';
"""
META_LOCK_KEY = 7_146_003
# What SQL may read of it (useview_refresh_status does).
META_RELATIONS: dict[str, tuple[str, ...]] = {
    "cht_meta.refresh_state": (
        "object", "layer", "kind", "code_version", "change_seq", "row_count", "refreshed_at", "schema",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class RefreshState:
    code_version: str
    change_seq: int
    row_count: int | None
    refreshed_at: datetime
    schema: str = "public"


def ensure_meta_schema(conn: psycopg.Connection) -> None:
    # Checked first: the DDL takes locks and writes the catalog, on every step otherwise.
    present = "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('cht_meta.refresh_state') AND attname = 'schema'"
    if conn.execute(present).fetchone() is not None:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (META_LOCK_KEY,))
        conn.execute(META_DDL)


def read_state(conn: psycopg.Connection, name: str) -> RefreshState | None:
    row = conn.execute(
        "SELECT code_version, change_seq, row_count, refreshed_at, schema FROM cht_meta.refresh_state "
        "WHERE object = %s",
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
    schema: str = "public",
) -> None:
    conn.execute(
        """
        INSERT INTO cht_meta.refresh_state
            (object, layer, kind, code_version, change_seq, row_count, refreshed_at, schema)
        VALUES (%s, %s, %s, %s, %s, %s, now(), %s)
        ON CONFLICT (object) DO UPDATE SET layer = excluded.layer, kind = excluded.kind,
            code_version = excluded.code_version, change_seq = excluded.change_seq,
            row_count = excluded.row_count, refreshed_at = now(), schema = excluded.schema
        """,
        (name, layer, kind, code_version, change_seq, row_count, schema),
    )
