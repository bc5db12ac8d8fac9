"""Real CouchDB 3 differs from pouchdb-server: opaque string seqs, `pending`, `seq: null`
between seq_interval marks. A local server answers with CouchDB 3-shaped pages."""

from __future__ import annotations

import base64
import hashlib
import json

import psycopg

from cht_assets.couch.client import CouchClient
from cht_assets.replica.replicate import replicate_database
from tests.support.compare import checkpoint, raw_state
from tests.support.http import RecordedCouch3, serve


def opaque_seq(n: int) -> str:
    """The shape of a CouchDB 3 seq: '<sum>-g1AAAA...' over 12 shards' positions."""
    blob = base64.urlsafe_b64encode(hashlib.sha256(str(n).encode()).digest() * 3).decode().rstrip("=")
    return f"{n}-g1AAAA{blob}"


def page(since_n: int, ids: list[str], total: int, *, deleted: set[str] = frozenset()) -> dict:
    results = []
    for offset, doc_id in enumerate(ids, start=1):
        n = since_n + offset
        rev = f"{1 + (doc_id in deleted)}-{hashlib.md5(doc_id.encode()).hexdigest()}"
        doc = (
            {"_id": doc_id, "_rev": rev, "_deleted": True}
            if doc_id in deleted
            else {"_id": doc_id, "_rev": rev, "type": "person", "name": f"Person {doc_id}"}
        )
        row = {
            "seq": opaque_seq(n) if offset == len(ids) else None,
            "id": doc_id,
            "changes": [{"rev": rev}],
            "doc": doc,
        }
        if doc_id in deleted:
            row["deleted"] = True
        results.append(row)
    last = since_n + len(ids)
    return {"results": results, "last_seq": opaque_seq(last), "pending": total - last}


def test_opaque_seqs_are_stored_verbatim_and_sent_back(pg_url: str) -> None:
    ids = [f"p{i:03d}" for i in range(7)]
    pages = {
        "0": page(0, ids[:3], 7),
        opaque_seq(3): page(3, ids[3:6], 7, deleted={"p004"}),
        opaque_seq(6): page(6, ids[6:], 7),
        opaque_seq(7): {"results": [], "last_seq": opaque_seq(7), "pending": 0},
    }
    couch = RecordedCouch3("medic", pages)
    with serve(couch) as url:
        client = CouchClient(url, "medic")
        result = replicate_database(pg_url, client, source="medic", all_sources=["medic"], batch_size=3)
        assert result.progress.changes == 7 and result.progress.deleted == 1
        assert checkpoint(pg_url, "medic") == (opaque_seq(7), 0)
        assert [q["since"][0] for q in couch.requests] == ["0", opaque_seq(3), opaque_seq(6)]
        assert all(q["seq_interval"] == ["3"] and q["include_docs"] == ["true"] for q in couch.requests)

        again = replicate_database(pg_url, client, source="medic", all_sources=["medic"], batch_size=3)
        assert again.progress.changes == 0 and couch.requests[-1]["since"] == [opaque_seq(7)]
    state = raw_state(pg_url, "medic")
    assert sorted(state) == ids and state["p005"].doc["name"] == "Person p005"
    assert state["p004"].deleted and state["p004"].doc == {
        "_id": "p004",
        "_rev": state["p004"].rev,
        "_deleted": True,
    }


def test_recorded_cht_changes_page(pg_url: str, shared_dir) -> None:
    """The CouchDB 3 `_changes` page recorded in shared/cht-sample-docs (include_docs, seq_interval)."""
    recorded = json.loads(
        (shared_dir / "cht-sample-docs/changes-feed/01-normal-include_docs-seq_interval.json").read_text()
    )
    recorded.pop("_request")
    pages = {
        "0": recorded,
        recorded["last_seq"]: {"results": [], "last_seq": recorded["last_seq"], "pending": 0},
    }
    xform = (shared_dir / "cht-sample-docs/xforms/default/app/pregnancy.xml").read_bytes()
    with serve(RecordedCouch3("medic", pages, {"form:pregnancy/xml": xform})) as url:
        result = replicate_database(
            pg_url,
            CouchClient(url, "medic"),
            source="medic",
            all_sources=["medic"],
            batch_size=len(recorded["results"]),
        )
    assert result.progress.changes == len(recorded["results"])
    assert checkpoint(pg_url, "medic")[0] == recorded["last_seq"]
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute("SELECT _id, attachment, xml FROM raw.couchdb_form_xml").fetchall()
    assert stored == [("form:pregnancy", "xml", xform.decode())]
    state = raw_state(pg_url, "medic")
    for row in recorded["results"]:
        assert state[row["id"]].rev == row["changes"][0]["rev"]
        assert state[row["id"]].doc == row["doc"]
