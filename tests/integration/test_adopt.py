"""Adopting a cht-couch2pg or cht-sync database (cht_assets.replica.adopt): the old tables are
made here by hand from the sample docs in CouchDB, as each tool would have written them. After
adopting, the replica holds what CouchDB holds, the sync continues from the old checkpoint, and
what the old checkpoint claimed without holding it has been fetched."""

from __future__ import annotations

import base64
import importlib
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg.types.json import Jsonb

from cht_assets.couch.client import CouchClient
from cht_assets.defs.adopt import adopt_job
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.replica import adopt as adopting
from cht_assets.replica.__main__ import main as replica_main
from cht_assets.replica.adopt import AdoptError, Layout, OldReplica, adopt
from cht_assets.replica.docs import USER_SECRET_FIELDS
from cht_assets.replica.reconcile import reconcile
from cht_assets.replica.replicate import replicate_database
from cht_assets.servers.process import free_port
from tests.conftest import fresh_database
from tests.integration.test_cht_sample_docs import load, sample_docs
from tests.integration.test_refresh_matviews import build
from tests.support import dagster as support

SAVED_AT = datetime(2025, 3, 1, 12, 30)  # cht-sync's saved_timestamp: UTC wall time, no zone


@pytest.fixture
def other_pg_url(embedded_pg_admin_url: str) -> Iterator[str]:
    """A second database on the same server: where the old tool kept its tables."""
    yield from fresh_database(embedded_pg_admin_url)


def sample(shared_dir: Path) -> dict[str, list[dict[str, Any]]]:
    root = shared_dir / "cht-sample-docs"
    users = sample_docs(root, "_users/*.json")
    for user in users:  # hashes cht-sync and couch2pg kept; never stored here
        user.update(iterations=10, pbkdf2_prf="sha256", password_sha="0" * 40)
    return {
        "": sample_docs(root, "medic/*.json", "medic/forms/*.json"),
        "-sentinel": sample_docs(root, "medic-sentinel/*.json"),
        "-users-meta": sample_docs(root, "medic-users-meta/*.json"),
        "-users": users,
    }


@contextmanager
def databases(
    couch_url: str, shared_dir: Path, suffixes: tuple[str, ...]
) -> Iterator[dict[str, CouchClient]]:
    prefix = f"a{uuid.uuid4().hex[:8]}"
    docs = sample(shared_dir)
    clients = {suffix: CouchClient(couch_url, prefix + suffix) for suffix in suffixes}
    for suffix, client in clients.items():
        client.create_db()
        load(client, docs[suffix])
    try:
        yield clients
    finally:
        for client in clients.values():
            client.delete_db()


def live_docs(client: CouchClient) -> list[dict[str, Any]]:
    """As both tools read them: winning revisions, attachments as stubs, no conflicts."""
    rows = client._request("GET", "/_all_docs", params={"include_docs": "true"}).json()["rows"]
    return [row["doc"] for row in rows]


def deleted_stubs(client: CouchClient) -> list[dict[str, Any]]:
    results = client._request("GET", "/_changes", params={"style": "all_docs"}).json()["results"]
    return [
        {"_id": change["id"], "_rev": change["changes"][0]["rev"], "_deleted": True}
        for change in results
        if change.get("deleted")
    ]


def update_seq(client: CouchClient) -> str:
    return str(client.db_info()["update_seq"])


COUCH2PG_DDL = """
CREATE TABLE couchdb (doc jsonb);
CREATE UNIQUE INDEX couchdb_doc_uuid ON couchdb ((doc ->> '_id'));
CREATE TABLE couchdb_users_meta (doc jsonb);
CREATE TABLE couchdb_progress (seq varchar, source varchar NOT NULL UNIQUE);
"""
COUCH2PG_TABLES = {"": "couchdb", "-sentinel": "couchdb", "-users-meta": "couchdb_users_meta"}


def make_couch2pg(pg_url: str, clients: dict[str, CouchClient], port: int) -> None:
    """cht-couch2pg's tables: docs only, medic and sentinel together, source 'host:port/db'."""
    with psycopg.connect(pg_url) as conn:
        conn.execute(COUCH2PG_DDL)
        for suffix, client in clients.items():
            seq = update_seq(client)
            for doc in live_docs(client):
                conn.execute(f"INSERT INTO {COUCH2PG_TABLES[suffix]} (doc) VALUES (%s)", (Jsonb(doc),))
            source = f"127.0.0.1:{port}/{client.db}"
            conn.execute("INSERT INTO couchdb_progress (seq, source) VALUES (%s, %s)", (seq, source))


CHT_SYNC_DDL = """
CREATE SCHEMA v1;
CREATE TABLE v1.couchdb (saved_timestamp timestamp, _id varchar PRIMARY KEY, _deleted boolean, source varchar, doc jsonb);
CREATE TABLE v1.couchdb_progress (seq varchar, pending integer, updated_at timestamptz, source varchar PRIMARY KEY);
"""


def make_cht_sync(pg_url: str, clients: dict[str, CouchClient]) -> None:
    """cht-sync's tables: one row per _id (a doc of one database overwrites the same id of
    another, as cht-sync's upsert does), deletes as stubs, source 'hostname/db'."""
    with psycopg.connect(pg_url) as conn:
        conn.execute(CHT_SYNC_DDL)
        for client in clients.values():
            seq, source = update_seq(client), f"127.0.0.1/{client.db}"
            for doc in live_docs(client) + deleted_stubs(client):
                conn.execute(
                    "INSERT INTO v1.couchdb VALUES (%s, %s, %s, %s, %s) ON CONFLICT (_id) DO UPDATE "
                    "SET saved_timestamp = excluded.saved_timestamp, _deleted = excluded._deleted, "
                    "source = excluded.source, doc = excluded.doc",
                    (SAVED_AT, doc["_id"], doc.get("_deleted", False), source, Jsonb(doc)),
                )
            conn.execute("INSERT INTO v1.couchdb_progress VALUES (%s, 0, now(), %s)", (seq, source))


def replica(pg_url: str, source: str) -> tuple[dict[str, tuple[str, dict]], set[str]]:
    """Live rows (rev, doc) and the ids of tombstones."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT _id, _rev, _deleted, doc FROM raw.couchdb_docs WHERE source = %s", (source,)
        ).fetchall()
    return {i: (rev, doc) for i, rev, deleted, doc in rows if not deleted}, {i for i, _, d, _ in rows if d}


def assert_live_docs_equal(client: CouchClient, pg_url: str) -> None:
    live, _ = replica(pg_url, client.db)
    expected = {}
    for doc in live_docs(client):
        if doc["_id"].startswith("org.couchdb.user:"):
            doc = {key: value for key, value in doc.items() if key not in USER_SECRET_FIELDS}
        expected[doc["_id"]] = (doc["_rev"], doc)
    assert live == expected


def assert_reconciled(pg_url: str, client: CouchClient) -> None:
    found = reconcile(pg_url, client, client.db)
    assert found.ok, found.summary()


def remove_report(pg_url: str, table: str, key: str) -> str:
    """A doc the old checkpoint counts but the old table lost (cht-core#2773)."""
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            f"DELETE FROM {table} WHERE ctid = (SELECT max(ctid) FROM {table} WHERE doc ->> 'type' = 'data_record') "
            f"RETURNING {key}"
        ).fetchone()[0]


STALE_COPIES = """
INSERT INTO couchdb_users_meta
SELECT doc || '{"_rev": "0-stale", "stale": true}' FROM couchdb_users_meta
WHERE ctid IN ((SELECT min(ctid) FROM couchdb_users_meta), (SELECT max(ctid) FROM couchdb_users_meta))
"""


def report(doc_id: str) -> dict[str, Any]:
    return {"_id": doc_id, "type": "data_record", "form": "pregnancy", "reported_date": 1_750_000_000_000}


def edit_after_snapshot(client: CouchClient) -> str:
    """A new report, an edited contact and a deleted report (its id returned): 3 changes."""
    docs = live_docs(client)
    contact = next(doc for doc in docs if doc.get("type") == "person")
    gone = next(doc for doc in docs if doc.get("type") == "data_record")  # not the one removed
    client.bulk_docs([report("after-snapshot"), {**contact, "name": "Renamed"}, {**gone, "_deleted": True}])
    return gone["_id"]


CHANGES_AFTER_SNAPSHOT = 3


def test_couch2pg_database_elsewhere_is_adopted(
    couch_server, pg_url: str, other_pg_url: str, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with databases(couch_server.url, shared_dir, ("", "-sentinel", "-users-meta")) as clients:
        medic = clients[""]
        make_couch2pg(other_pg_url, clients, couch_server.port)
        counts = {suffix: len(live_docs(client)) for suffix, client in clients.items()}
        lost = remove_report(other_pg_url, "couchdb", "doc ->> '_id'")
        with psycopg.connect(other_pg_url) as conn:  # couch2pg's side tables have no key: stale
            # copies of the first row (in another batch, below) and of the last (in the same one)
            conn.execute(STALE_COPIES)
        deleted = edit_after_snapshot(medic)
        sources = [client.db for client in clients.values()]
        messages: list[str] = []
        monkeypatch.setattr(adopting, "ROWS_PER_BATCH", 7)  # several batches, and duplicates across them
        old = OldReplica(Layout.COUCH2PG, "public", url=other_pg_url)
        result = adopt(
            pg_url, old, lambda db: CouchClient(couch_server.url, db), sources, log=messages.append
        )

        adopted = {done.source: done for done in result.adopted}
        assert set(adopted) == set(sources) and result.absent == [] and result.ignored == []
        assert adopted[medic.db].rows == counts[""] - 1  # the one lost
        assert adopted[clients["-sentinel"].db].rows == counts["-sentinel"] == 70  # told apart from medic's
        assert adopted[clients["-users-meta"].db].rows == counts["-users-meta"]
        assert adopted[medic.db].caught_up == CHANGES_AFTER_SNAPSHOT  # only what changed after the checkpoint
        assert adopted[medic.db].repaired.fetched_ids == [lost]
        assert not any(done.repaired.tombstoned for done in result.adopted)
        assert any("docs/s" in message for message in messages)
        for client in clients.values():
            assert_live_docs_equal(client, pg_url)
            assert_reconciled(pg_url, client)
        # couch2pg kept no deletes: the only tombstone is the delete synced after adopting
        assert replica(pg_url, medic.db)[1] == {deleted}
        with psycopg.connect(pg_url) as conn:
            form_xml = dict(conn.execute("SELECT _id, xml FROM raw.couchdb_form_xml").fetchall())
            seq = conn.execute(
                "SELECT seq FROM raw.couchdb_progress WHERE source = %s", (medic.db,)
            ).fetchone()
        forms = {doc["_id"]: doc for doc in sample(shared_dir)[""] if doc.get("type") == "form"}
        assert form_xml == {
            i: base64.b64decode(doc["_attachments"]["xml"]["data"]).decode() for i, doc in forms.items()
        }
        assert seq == (update_seq(medic),)

        medic.bulk_docs([report("next-sync")])
        assert replicate_database(pg_url, medic, source=medic.db, all_sources=sources).progress.changes == 1

        monkeypatch.setenv("COUCHDB_URL", couch_server.url)
        monkeypatch.setenv("COUCHDB_DBS", ",".join(sources))
        monkeypatch.setenv("POSTGRES_URL", pg_url)
        build(pg_url, ["form_metadata"])  # the view layers take the adopted rows
        with psycopg.connect(pg_url) as conn:
            in_view = {row[0] for row in conn.execute("SELECT uuid FROM form_metadata")}
        assert in_view == {
            d["_id"] for d in live_docs(medic) if d.get("type") == "data_record" and d.get("form")
        }


@pytest.mark.parametrize("pg_url", ["pg18-embedded", "pg15-system"], indirect=True)
def test_cht_sync_schema_in_this_database_is_adopted_from_the_command_line(
    couch_server,
    pg_url: str,
    shared_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with databases(couch_server.url, shared_dir, ("", "-users")) as clients:
        medic, users = clients[""], clients["-users"]
        make_cht_sync(pg_url, clients)
        # CHT keeps user-settings docs under the ids of the _users docs: cht-sync's rows of
        # them are _users' now, and medic's are missing although its checkpoint is past them.
        overwritten = {doc["_id"] for doc in live_docs(medic)} & {doc["_id"] for doc in live_docs(users)}
        assert overwritten
        lost = remove_report(pg_url, "v1.couchdb", "_id")
        edit_after_snapshot(medic)
        monkeypatch.setattr(adopting, "BLOCKS_PER_BATCH", 2)  # several statements, the last one open
        monkeypatch.setenv("COUCHDB_URL", couch_server.url)
        monkeypatch.setenv("COUCHDB_DBS", f"{medic.db},{users.db}")
        monkeypatch.setenv("POSTGRES_URL", pg_url)

        assert replica_main(["adopt", "--layout", "cht-sync"]) == 0
        out = capsys.readouterr().out
        assert "docs/s" in out
        missing = 1 + len(overwritten)
        assert f"then {CHANGES_AFTER_SNAPSHOT} newer changes synced, {missing} missing docs fetched" in out
        for client in clients.values():
            assert_live_docs_equal(client, pg_url)  # _users hashes stripped
            assert_reconciled(pg_url, client)
            assert replica(pg_url, client.db)[1] == {stub["_id"] for stub in deleted_stubs(client)}
        with psycopg.connect(pg_url) as conn:
            saved = conn.execute(
                "SELECT saved_timestamp FROM raw.couchdb_docs WHERE source = %s AND _id = 'settings'",
                (medic.db,),
            ).fetchone()[0]
        assert saved == SAVED_AT.replace(tzinfo=UTC)
        assert lost in replica(pg_url, medic.db)[0]

        users.bulk_docs([{"_id": "org.couchdb.user:new", "type": "user", "name": "new", "salt": "x"}])
        synced = replicate_database(pg_url, users, source=users.db, all_sources=[medic.db, users.db])
        assert synced.progress.changes == 1


def test_adopting_refuses_a_replica_with_rows_unless_forced(
    couch_server, pg_url: str, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with databases(couch_server.url, shared_dir, ("",)) as clients:
        medic = clients[""]
        monkeypatch.setenv("COUCHDB_DBS", medic.db)
        with monkeypatch.context() as unreachable:  # the code location offers the job (no forms read)
            unreachable.setenv("POSTGRES_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none")
            unreachable.setenv("COUCHDB_URL", f"http://127.0.0.1:{free_port()}")
            sys.modules.pop("cht_assets.definitions", None)
            assert importlib.import_module("cht_assets.definitions").defs.resolve_job_def("adopt_replica")
            sys.modules.pop("cht_assets.definitions", None)
        make_cht_sync(pg_url, clients)
        replicate_database(pg_url, medic, source=medic.db, all_sources=[medic.db])
        with pytest.raises(AdoptError, match="ALTER TABLE public.couchdb SET SCHEMA"):
            adopt(pg_url, OldReplica(Layout.COUCH2PG, "public"), lambda db: medic, [medic.db])

        resources = {
            "couchdb": CouchDBResource(url=couch_server.url),
            "postgres": PostgresResource(url=pg_url),
        }
        config = {"ops": {"adopt": {"config": {"layout": "cht-sync"}}}}
        with support.dagster_instance() as instance:
            refused = adopt_job().execute_in_process(
                run_config=config, resources=resources, instance=instance, raise_on_error=False
            )
            assert not refused.success
            failure = refused.get_step_failure_events()[0].step_failure_data.error
            assert "already holds" in failure.message

            config["ops"]["adopt"]["config"]["force"] = True
            forced = adopt_job().execute_in_process(run_config=config, resources=resources, instance=instance)
        assert forced.success
        events = forced.get_asset_materialization_events()
        assert [event.asset_key for event in events] == [dg.AssetKey(["raw", medic.db])]
        assert events[0].materialization.metadata["adopted_rows"].value == 0  # same revisions: kept
        assert_live_docs_equal(medic, pg_url)
        assert_reconciled(pg_url, medic)
