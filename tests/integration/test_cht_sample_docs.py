"""Replicate the real CHT documents in shared/cht-sample-docs and compare with CouchDB."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import psycopg

from cht_assets.couch.client import CouchClient
from cht_assets.replica.replicate import replicate_database
from tests.support.compare import assert_replica_equals, raw_state


def sample_docs(root: Path, *relative: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for pattern in relative:
        for path in sorted(root.glob(pattern)):
            loaded = json.loads(path.read_text())
            for doc in loaded if isinstance(loaded, list) else [loaded]:
                docs.append(doc["doc"] if "note" in doc else doc)
    return docs


def load(client: CouchClient, docs: list[dict[str, Any]]) -> None:
    """Keep the recorded revisions (new_edits=false), as a replication from CHT would."""
    with_rev = [doc for doc in docs if "_rev" in doc]
    without = [doc for doc in docs if "_rev" not in doc]
    if with_rev:
        client.bulk_docs(with_rev, new_edits=False)
    if without:
        assert all("ok" in row for row in client.bulk_docs(without))


def test_real_cht_documents_replicate_exactly(pg_url: str, couch_server, shared_dir: Path) -> None:
    root = shared_dir / "cht-sample-docs"
    databases = {
        "medic": sample_docs(root, "medic/*.json", "medic/forms/*.json"),
        "medic-sentinel": sample_docs(root, "medic-sentinel/*.json"),
        "medic-users-meta": sample_docs(root, "medic-users-meta/*.json"),
        "_users": sample_docs(root, "_users/*.json", "verbatim/cht-couch2pg.tests.docs.single-user.json"),
        "couch2pg-fixture": sample_docs(root, "verbatim/cht-couch2pg.tests.docs.medic.json"),
    }
    prefix = "sample-"
    sources = [prefix + name.lstrip("_") for name in databases]
    for name, docs in databases.items():
        client = CouchClient(couch_server.url, prefix + name.lstrip("_"))
        client.create_db()
        try:
            load(client, docs)
            result = replicate_database(pg_url, client, source=client.db, all_sources=sources, batch_size=40)
            unique_ids = len({d["_id"] for d in docs})
            assert result.progress.changes == unique_ids
            if name == "_users":
                state = raw_state(pg_url, client.db)
                assert state, "users replicated"
                for stored in state.values():
                    assert not {"derived_key", "salt", "password_scheme"} & set(stored.doc)
            else:
                assert assert_replica_equals(client, pg_url, client.db) == unique_ids
        finally:
            client.delete_db()
    with psycopg.connect(pg_url) as conn:
        # couch2pg's relations: medic + sentinel docs in `couchdb`, users-meta in its own.
        in_couchdb = conn.execute("SELECT count(*) FROM couchdb WHERE doc->>'type' = 'info'").fetchone()[0]
        telemetry = conn.execute(
            "SELECT count(*) FROM couchdb_users_meta WHERE doc->>'type' = 'telemetry'"
        ).fetchone()[0]
        progress = conn.execute("SELECT count(*) FROM couchdb_progress").fetchone()[0]
        form_xml = dict(
            conn.execute("SELECT _id, xml FROM raw.couchdb_form_xml WHERE source = 'sample-medic'").fetchall()
        )
    forms = {d["_id"]: d for d in databases["medic"] if d.get("type") == "form"}
    assert set(form_xml) == set(forms)
    for form_id, doc in forms.items():
        assert form_xml[form_id] == base64.b64decode(doc["_attachments"]["xml"]["data"]).decode()
    info_docs = [d for name in ("medic", "medic-sentinel", "couch2pg-fixture") for d in databases[name]]
    assert in_couchdb == sum(1 for d in info_docs if d.get("type") == "info")
    assert telemetry == sum(1 for d in databases["medic-users-meta"] if d.get("type") == "telemetry")
    assert progress == len(databases)
