"""Which objects changed docs reach (cht_assets.warehouse.reach), against a real replica: the doc
as CouchDB sends it and as the replica holds it both count."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from cht_assets.replica.schema import ensure_raw_schema
from cht_assets.warehouse.reach import EVERY_DOC, objects_reached

pytestmark = pytest.mark.parametrize("pg_url", ["pg18-embedded", "pg15-system"], indirect=True)

FILTERS = {
    "contact": "doc ->> 'type' IN ('person', 'clinic')",
    "data_record": "doc ->> 'type' = 'data_record'",
    "translation": "_id LIKE 'messages-%'",
    "document_metadata": EVERY_DOC,
}


@pytest.fixture
def conn(pg_url: str):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        ensure_raw_schema(conn, ["medic"])
        held = [
            ("p1", False, {"_id": "p1", "type": "person"}),
            ("r1", False, {"_id": "r1", "type": "data_record"}),
            ("gone", True, {"_id": "gone", "_deleted": True}),
        ]
        for doc_id, deleted, doc in held:
            conn.execute(
                "INSERT INTO raw.couchdb_docs (source, _id, _rev, _deleted, doc) VALUES ('medic', %s, '1-a', %s, %s)",
                (doc_id, deleted, Jsonb(doc)),
            )
        yield conn


def change(doc_id: str, doc: dict | None = None, *, deleted: bool = False) -> dict:
    body = doc or {"_id": doc_id, "_rev": "2-b", "_deleted": True}
    return {"id": doc_id, "deleted": deleted, "doc": {"_id": doc_id, **body}}


def test_a_new_doc_reaches_the_objects_whose_filter_selects_it(conn: psycopg.Connection) -> None:
    reached = objects_reached(conn, "medic", [change("r2", {"type": "data_record"})], FILTERS)
    assert reached == {"data_record", "document_metadata"}
    reached = objects_reached(conn, "medic", [change("messages-fr", {"type": "translations"})], FILTERS)
    assert reached == {"translation", "document_metadata"}


def test_an_edit_out_of_a_filter_and_a_delete_reach_what_held_the_doc(conn: psycopg.Connection) -> None:
    # p1 was a person, is now something no filter selects: the contacts held it.
    assert objects_reached(conn, "medic", [change("p1", {"type": "other"})], FILTERS) == {
        "contact",
        "document_metadata",
    }
    assert objects_reached(conn, "medic", [change("r1", deleted=True)], FILTERS) == {
        "data_record",
        "document_metadata",
    }


def test_a_tombstone_the_replica_holds_already_reaches_every_filtered_object(
    conn: psycopg.Connection,
) -> None:
    # Deleted and replicated since the sensor's seq: what it was is no longer known.
    assert objects_reached(conn, "medic", [change("gone", deleted=True)], FILTERS) == set(FILTERS)


def test_other_databases_and_no_changes_reach_only_what_reads_every_doc(conn: psycopg.Connection) -> None:
    # r1 is medic's: in another database the same id is a doc of its own, never seen.
    assert objects_reached(conn, "medic-sentinel", [change("r1", {"type": "info"})], FILTERS) == {
        "document_metadata"
    }
    assert objects_reached(conn, "medic", [], FILTERS) == set()


def test_before_the_first_sync_only_the_changed_docs_count(pg_url: str) -> None:
    """An empty warehouse (no replica yet): the filters run over the changed docs alone."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        reached = objects_reached(conn, "medic", [change("p9", {"type": "person"})], FILTERS)
    assert reached == {"contact", "document_metadata"}
