"""Read CouchDB and the raw replica independently of the replicator, and compare them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg

from cht_assets.couch.client import CouchClient


@dataclass(frozen=True)
class Stored:
    rev: str
    deleted: bool
    conflicts: tuple[str, ...]
    doc: dict[str, Any]


def couch_state(client: CouchClient) -> dict[str, Stored]:
    """Live docs from _all_docs (winning revision + conflicts); tombstones from _changes, each
    with the body of its deleted revision (a webapp delete keeps the whole doc)."""
    state: dict[str, Stored] = {}
    rows = client._request("GET", "/_all_docs", params={"include_docs": "true", "conflicts": "true"}).json()[
        "rows"
    ]
    for row in rows:
        doc = row["doc"]
        conflicts = tuple(sorted(doc.pop("_conflicts", ())))
        state[row["id"]] = Stored(doc["_rev"], False, conflicts, doc)
    changes = client._request("GET", "/_changes", params={"style": "all_docs"}).json()["results"]
    for change in changes:
        if change.get("deleted"):
            rev = change["changes"][0]["rev"]
            state[change["id"]] = Stored(rev, True, (), client.get_doc(change["id"], rev=rev))
    return state


def raw_state(pg_url: str, source: str) -> dict[str, Stored]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT _id, _rev, _deleted, coalesce(_conflicts, '{}'), doc::text FROM raw.couchdb_docs WHERE source = %s",
            (source,),
        ).fetchall()
    return {
        doc_id: Stored(rev, deleted, tuple(sorted(conflicts)), json.loads(doc))
        for doc_id, rev, deleted, conflicts, doc in rows
    }


def assert_replica_equals(client: CouchClient, pg_url: str, source: str) -> int:
    """Every live doc with its content and conflicts, and a tombstone per deleted doc."""
    expected, actual = couch_state(client), raw_state(pg_url, source)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert not missing, f"{len(missing)} docs missing from the replica, e.g. {missing[:3]}"
    assert not extra, f"{len(extra)} docs in the replica but not in CouchDB, e.g. {extra[:3]}"
    differing = [doc_id for doc_id in expected if expected[doc_id] != actual[doc_id]]
    assert not differing, (
        f"{len(differing)} docs differ, e.g. {differing[0]}: {expected[differing[0]]} != {actual[differing[0]]}"
    )
    return len(expected)


def checkpoint(pg_url: str, source: str) -> tuple[str, int | None] | None:
    with psycopg.connect(pg_url) as conn:
        try:
            return conn.execute(
                "SELECT seq, pending FROM raw.couchdb_progress WHERE source = %s", (source,)
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return None
