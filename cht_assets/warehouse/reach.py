"""Which objects a batch of changed CouchDB docs reaches first: those whose `-- raw_docs:` filter
selects the doc as CouchDB sends it now or as the replica holds it (before the change: an edit
that takes a doc out of a filter, a delete, reach what held it), and every object that reads
the doc's database without a filter. What reads those objects follows from the graph.

The update_seq sensor asks this before the replication runs (cht_assets.defs.sensors): a new
report then refreshes the report's tables and what reads them, not the contacts, the users or
the translations, and a run's fixed cost (Dagster's events per asset and check) shrinks with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from cht_assets.replica.schema import DOCS_TABLE, RAW_SCHEMA
from cht_assets.sqlgraph.model import SqlObject
from cht_assets.warehouse.versions import VOLATILE

EVERY_DOC = ""  # an object reading its databases' docs without a `raw_docs` filter


def raw_docs_filter(obj: SqlObject) -> str:
    """The object's `raw_docs` predicate; EVERY_DOC when it has none, or when it also reads the
    replication's progress (which moves on every sync, whatever the docs)."""
    if VOLATILE & set(obj.depends_on):
        return EVERY_DOC
    return obj.config.get("raw_docs", EVERY_DOC)


def changed_rows(source: str, changes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`_changes` rows (with include_docs) as the replica's columns hold them."""
    rows = []
    for change in changes:
        deleted = bool(change.get("deleted"))
        doc = change.get("doc") or {"_id": change["id"], "_deleted": deleted}
        rows.append({"source": source, "_id": change["id"], "_deleted": deleted, "doc": doc})
    return rows


def objects_reached(
    conn: psycopg.Connection,
    source: str,
    changes: Sequence[Mapping[str, Any]],
    filters: Mapping[str, str],
) -> set[str]:
    """The objects of `filters` (name -> its `raw_docs` predicate, EVERY_DOC for none), all
    reading `source`'s docs, that the changes reach. One query: the predicates run over the
    changed docs and over the replica's rows of the same ids."""
    if not changes or not filters:
        return set()
    names = sorted(filters)
    always = {name for name in names if filters[name] == EVERY_DOC}
    filtered = [name for name in names if name not in always]
    if not filtered:
        return always
    # Predicates are SQL of our own sql/ files and of formviews (their form id quoted as a
    # literal); the changed docs are bound. `%` in a predicate is not a placeholder. A tombstone
    # the replica already holds (the doc deleted and replicated since the seq the sensor saw)
    # no longer says what it was: it reaches every filtered object.
    tests = ", ".join(
        f"coalesce(bool_or(unknown OR ({filters[name].replace('%', '%%')})), false)" for name in filtered
    )
    rows = changed_rows(source, changes)
    replica = f"{RAW_SCHEMA}.{DOCS_TABLE}"
    held = ""
    if conn.execute("SELECT to_regclass(%s)", (replica,)).fetchone()[0] is not None:
        held = (
            f" UNION ALL SELECT r.source, r._id, r._deleted, r.doc, r._deleted AS unknown FROM {replica} AS r"
            " WHERE r.source = %(source)s AND r._id = ANY(%(ids)s)"
        )
    query = (
        "WITH couchdb_docs AS (SELECT c.source, c._id, c._deleted, c.doc, false AS unknown"
        " FROM jsonb_to_recordset(%(rows)s) AS c (source text, _id text, _deleted boolean, doc jsonb)"
        f"{held}) SELECT {tests} FROM couchdb_docs"
    )
    found = conn.execute(
        query, {"rows": Jsonb(rows), "source": source, "ids": [row["_id"] for row in rows]}
    ).fetchone()
    return always | {name for name, hit in zip(filtered, found, strict=True) if hit}
