"""What each object was last built from (code version, raw change_seq, the versions of its
inputs), the version of its rows, and what its checks last found."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

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
-- What an object's rows are (a new version when they may have changed), and what it was last
-- built or checked from (cht_assets.warehouse.versions); added after the first release.
ALTER TABLE cht_meta.refresh_state ADD COLUMN IF NOT EXISTS data_version text;
ALTER TABLE cht_meta.refresh_state ADD COLUMN IF NOT EXISTS inputs_version text;
-- The change_seq of the last raw doc its `raw_docs` filter selects, as of change_seq.
ALTER TABLE cht_meta.refresh_state ADD COLUMN IF NOT EXISTS docs_seq bigint;
CREATE TABLE IF NOT EXISTS cht_meta.check_findings (
    object         text        NOT NULL,
    check_name     text        NOT NULL,
    inputs_version text        NOT NULL,
    count          bigint      NOT NULL,
    examples       jsonb       NOT NULL,
    details        jsonb       NOT NULL,
    checked_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (object, check_name)
);
-- The check's own version (its SQL, its object's code): added after the first release.
ALTER TABLE cht_meta.check_findings ADD COLUMN IF NOT EXISTS check_version text;
-- The keys of every failing row, for a check scoped to the rows a refresh rewrote
-- (cht_assets.warehouse.checks): added after the first release.
ALTER TABLE cht_meta.check_findings ADD COLUMN IF NOT EXISTS failing_keys text[];
COMMENT ON TABLE cht_meta.check_findings IS 'What each check of every view-layer object last found, and from what inputs.';
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
    data_version: str | None = None
    inputs_version: str | None = None
    docs_seq: int | None = None


def ensure_meta_schema(conn: psycopg.Connection) -> None:
    # Checked first: the DDL takes locks and writes the catalog, on every step otherwise.
    present = "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('cht_meta.check_findings') AND attname = 'failing_keys'"
    if conn.execute(present).fetchone() is not None:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (META_LOCK_KEY,))
        conn.execute(META_DDL)


def read_state(conn: psycopg.Connection, name: str) -> RefreshState | None:
    row = conn.execute(
        "SELECT code_version, change_seq, row_count, refreshed_at, schema, data_version, inputs_version, docs_seq "
        "FROM cht_meta.refresh_state "
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
    data_version: str | None = None,
    inputs_version: str | None = None,
    docs_seq: int | None = None,
) -> None:
    conn.execute(
        """
        INSERT INTO cht_meta.refresh_state (object, layer, kind, code_version, change_seq, row_count,
            refreshed_at, schema, data_version, inputs_version, docs_seq)
        VALUES (%s, %s, %s, %s, %s, %s, now(), %s, %s, %s, %s)
        ON CONFLICT (object) DO UPDATE SET layer = excluded.layer, kind = excluded.kind,
            code_version = excluded.code_version, change_seq = excluded.change_seq,
            row_count = excluded.row_count, refreshed_at = now(), schema = excluded.schema,
            data_version = excluded.data_version, inputs_version = excluded.inputs_version,
            docs_seq = excluded.docs_seq
        """,
        (
            name,
            layer,
            kind,
            code_version,
            change_seq,
            row_count,
            schema,
            data_version,
            inputs_version,
            docs_seq,
        ),
    )


def read_data_versions(conn: psycopg.Connection, names: Sequence[str]) -> dict[str, str | None]:
    """The data version of each of `names` that has been built (None: built before versions)."""
    rows = conn.execute(
        "SELECT object, data_version FROM cht_meta.refresh_state WHERE object = ANY(%s)", (list(names),)
    ).fetchall()
    return dict(rows)


@dataclass(frozen=True)
class StoredFinding:
    """What one check found last, from which inputs, when."""

    inputs_version: str
    count: int
    examples: list[str]
    details: dict[str, int]
    checked_at: datetime
    check_version: str | None = None
    keys: tuple[str, ...] | None = None  # every failing row's key, for a scoped check


def read_findings(conn: psycopg.Connection, name: str) -> dict[str, StoredFinding]:
    rows = conn.execute(
        "SELECT check_name, inputs_version, count, examples, details, checked_at, check_version, "
        "failing_keys FROM cht_meta.check_findings WHERE object = %s",
        (name,),
    ).fetchall()
    return {row[0]: StoredFinding(*row[1:-1], None if row[-1] is None else tuple(row[-1])) for row in rows}


def save_findings(conn: psycopg.Connection, name: str, findings: Mapping[str, StoredFinding]) -> None:
    """Replace the object's findings (a check no longer declared loses its row)."""
    with conn.transaction():
        conn.execute("DELETE FROM cht_meta.check_findings WHERE object = %s", (name,))
        for check_name, found in findings.items():
            conn.execute(
                "INSERT INTO cht_meta.check_findings "
                "(object, check_name, inputs_version, count, examples, details, checked_at, check_version, "
                "failing_keys) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (name, check_name, found.inputs_version, found.count, Jsonb(found.examples),
                 Jsonb(found.details), found.checked_at, found.check_version,
                 None if found.keys is None else list(found.keys)),
            )  # fmt: skip
