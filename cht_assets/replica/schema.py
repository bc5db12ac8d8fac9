"""DDL of the raw replica and its couch2pg-compatible relations.

`raw.couchdb_docs` holds every CouchDB doc of every source database, keyed by (source, _id),
with deletes kept as tombstones. `raw.couchdb_progress` holds the checkpoint of each source.
The views in `public` keep SQL written for cht-couch2pg working.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

RAW_SCHEMA = "raw"
DOCS_TABLE = "couchdb_docs"
PROGRESS_TABLE = "couchdb_progress"

RAW_DDL = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SEQUENCE IF NOT EXISTS raw.couchdb_change_seq;
CREATE TABLE IF NOT EXISTS raw.couchdb_docs (
    source          text        NOT NULL,
    _id             text        NOT NULL,
    _rev            text        NOT NULL,
    _deleted        boolean     NOT NULL DEFAULT false,
    _conflicts      text[],
    saved_timestamp timestamptz NOT NULL DEFAULT clock_timestamp(),
    doc             jsonb       NOT NULL,
    change_seq      bigint      NOT NULL DEFAULT nextval('raw.couchdb_change_seq'),
    PRIMARY KEY (source, _id)
);
CREATE INDEX IF NOT EXISTS couchdb_docs_change_seq ON raw.couchdb_docs (change_seq);
CREATE INDEX IF NOT EXISTS couchdb_docs_id ON raw.couchdb_docs (_id);
-- Views, their checks and rollups select docs by type: without it each read of one kind of
-- doc (telemetry, tasks, contacts) scanned every doc, detoasting each to read its type.
CREATE INDEX IF NOT EXISTS couchdb_docs_type ON raw.couchdb_docs ((doc ->> 'type'));
-- The deployment's few user and form docs, which plain views (useview_user, useview_task_monthly,
-- useview_form_label) look up in every query: without it each chart scanned every doc.
CREATE INDEX IF NOT EXISTS couchdb_docs_user_form ON raw.couchdb_docs ((doc ->> 'type'), _id)
    WHERE doc ->> 'type' IN ('user-settings', 'user', 'form');
-- The translation docs (`messages-<lang>`): LIKE cannot use the _id index under a collation
-- other than C, so each read of the dashboards' words scanned every doc.
CREATE INDEX IF NOT EXISTS couchdb_docs_translations ON raw.couchdb_docs (_id) WHERE _id LIKE 'messages-%';
COMMENT ON COLUMN raw.couchdb_docs.change_seq IS
    'Increases on every write of the row; views refresh what changed after their last seq.';
COMMENT ON TABLE raw.couchdb_docs IS
    'Replica of the CouchDB databases: winning revision per doc, tombstones kept (_deleted).';
CREATE TABLE IF NOT EXISTS raw.couchdb_progress (
    source     text        PRIMARY KEY,
    seq        text        NOT NULL,
    pending    bigint,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Row counts kept from each page's changes, so a sync never counts the whole table; NULL =
-- unknown (first sync, after a repair): the next sync counts once.
ALTER TABLE raw.couchdb_progress ADD COLUMN IF NOT EXISTS docs bigint, ADD COLUMN IF NOT EXISTS live_docs bigint;
COMMENT ON TABLE raw.couchdb_progress IS
    'Checkpoint per CouchDB database: the opaque _changes seq, stored verbatim.';
CREATE TABLE IF NOT EXISTS raw.couchdb_form_xml (
    source     text NOT NULL,
    _id        text NOT NULL,
    _rev       text NOT NULL,
    attachment text NOT NULL,
    xml        text NOT NULL,
    PRIMARY KEY (source, _id)
);
COMMENT ON TABLE raw.couchdb_form_xml IS
    'The XForm attachment of each live form doc (attachments arrive as stubs in _changes).';
"""

# cht-couch2pg put medic and medic-sentinel docs into `couchdb`, and the other databases into
# their own one-column tables; these views give existing SQL the same relations.
COMPAT_TABLES = {
    "-users-meta": "couchdb_users_meta",
    "-logs": "couchdb_medic_logs",
    "_users": "couchdb_medic_users",
}

# The relations the raw layer gives SQL to read, with their columns (for `SELECT *` and lineage).
RAW_RELATIONS: dict[str, tuple[str, ...]] = {
    "raw.couchdb_docs": (
        "source",
        "_id",
        "_rev",
        "_deleted",
        "_conflicts",
        "saved_timestamp",
        "doc",
        "change_seq",
    ),
    "raw.couchdb_progress": ("source", "seq", "pending", "updated_at", "docs", "live_docs"),
    "raw.couchdb_form_xml": ("source", "_id", "_rev", "attachment", "xml"),
    **{relation: ("doc",) for relation in ("couchdb", *COMPAT_TABLES.values())},
    "couchdb_progress": ("seq", "source"),
}

# Serialises DDL from replication assets that start at the same time.
DDL_LOCK_KEY = 7_146_001
# Every replication batch holds this lock shared until it commits; a view refresh takes it
# exclusively for an instant to read a change_seq below which every write has committed.
WRITE_LOCK_KEY = 7_146_002


def compat_relation(source: str) -> str:
    """The cht-couch2pg relation a source database's live docs appear in."""
    for suffix, relation in COMPAT_TABLES.items():
        if source.endswith(suffix):
            return relation
    return "couchdb"


def relation_sources(relation: str, sources: Sequence[str]) -> list[str]:
    """The source databases whose replication writes a raw relation (none: not a raw relation)."""
    if relation not in RAW_RELATIONS:
        return []
    if relation.startswith("raw.") or relation == "couchdb_progress":
        return list(sources)
    return [source for source in sources if compat_relation(source) == relation]


def compat_views_sql(sources: Sequence[str]) -> sql.Composed:
    by_relation: dict[str, list[str]] = {}
    for source in sources:
        by_relation.setdefault(compat_relation(source), []).append(source)
    statements = [
        sql.SQL(
            "CREATE OR REPLACE VIEW public.{} AS SELECT doc FROM raw.couchdb_docs "
            "WHERE source = ANY({}::text[]) AND NOT _deleted"
        ).format(sql.Identifier(relation), sql.Literal(members))
        for relation, members in sorted(by_relation.items())
    ]
    statements.append(
        sql.SQL(
            "CREATE OR REPLACE VIEW public.couchdb_progress AS SELECT seq, source FROM raw.couchdb_progress"
        )
    )
    for relation, members in sorted(by_relation.items()):
        statements.append(
            sql.SQL("COMMENT ON COLUMN public.{}.doc IS {}").format(
                sql.Identifier(relation),
                sql.Literal(
                    f"A live doc of CouchDB database {', '.join(members)}, whole, as jsonb (cht-couch2pg)."
                ),
            )
        )
    statements += [
        sql.SQL("COMMENT ON COLUMN public.couchdb_progress.{} IS {}").format(
            sql.Identifier(column), sql.Literal(text)
        )
        for column, text in COMPAT_PROGRESS_COMMENTS.items()
    ]
    return sql.SQL(";\n").join(statements)


COMPAT_PROGRESS_COMMENTS = {
    "seq": "The last CouchDB _changes seq replicated from the database, verbatim (cht-couch2pg).",
    "source": "The CouchDB database (cht-couch2pg).",
}


def committed_change_seq(conn: psycopg.Connection) -> int:
    """The highest change_seq such that no write with a lower one is still in flight."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
        return conn.execute("SELECT coalesce(max(change_seq), 0) FROM raw.couchdb_docs").fetchone()[0]


def ensure_raw_schema(conn: psycopg.Connection, sources: Sequence[str]) -> None:
    """Create or update the raw tables and the couch2pg views; safe to run concurrently."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
        conn.execute(RAW_DDL)
        conn.execute(compat_views_sql(sources))
