"""Backups through Dagster, with their restore drills, on real servers: the analytics database on
embedded PostgreSQL 18 and on the machine's PostgreSQL 15 (each needs its own pg_dump), and a
CouchDB database with attachments, a conflict and a design doc on pouchdb-server."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import requests

from cht_assets.backup import couchdb as couch_backup
from cht_assets.backup import files
from cht_assets.couch.client import CouchClient
from cht_assets.defs.backups import (
    CHECK_NAME,
    POSTGRES_BACKUP_KEY,
    backup_assets,
    backup_checks,
    couchdb_backup_key,
)
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from tests.support.dagster import dagster_instance

KEEP = 2


@pytest.fixture
def backup_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    monkeypatch.setenv("BACKUP_KEEP", str(KEEP))
    return tmp_path / "backups"


def fill_postgres(pg_url: str) -> None:
    """Tables in two schemas, a view, a function, a populated and an empty materialized view."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA raw")
        conn.execute("CREATE TABLE raw.docs (id text PRIMARY KEY, doc jsonb NOT NULL)")
        conn.execute(
            "INSERT INTO raw.docs SELECT 'd' || i, jsonb_build_object('n', i, 'text', repeat('x', i % 50)) "
            "FROM generate_series(1, 3000) AS i"
        )
        conn.execute(
            "CREATE TABLE public.facts AS SELECT i AS n, i * 2 AS twice FROM generate_series(1, 777) AS i"
        )
        conn.execute(
            "CREATE FUNCTION public.twice(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2'"
        )
        conn.execute(
            "CREATE VIEW public.v_docs AS SELECT id, public.twice((doc->>'n')::int) AS t FROM raw.docs"
        )
        conn.execute("CREATE MATERIALIZED VIEW public.m_count AS SELECT count(*) AS c FROM raw.docs")
        conn.execute("CREATE MATERIALIZED VIEW public.m_empty AS SELECT 1 AS one WITH NO DATA")


def fill_couchdb(client: CouchClient) -> None:
    photo = base64.b64encode(bytes(range(256)) * 40).decode()
    docs = [{"_id": f"doc-{i:04}", "type": "data_record", "i": i} for i in range(450)]
    docs.append(
        {"_id": "with-photo", "_attachments": {"photo.jpg": {"content_type": "image/jpeg", "data": photo}}}
    )
    docs.append({"_id": "_design/medic-client", "views": {"x": {"map": "function(doc){emit(doc._id)}"}}})
    docs.append({"_id": "surrogate", "text": "\ud83d half an emoji from a phone"})
    client.bulk_docs(docs)
    client.bulk_docs(
        [{"_id": "doc-0001", "_rev": "1-0000000000000000000000000000beef", "i": -1}], new_edits=False
    )
    gone = client.get_doc("doc-0002")
    client.bulk_docs([{**gone, "_deleted": True}])


def definitions(client: CouchClient, pg_url: str) -> dg.Definitions:
    return dg.Definitions(
        assets=backup_assets((client.db,)),
        asset_checks=backup_checks((client.db,)),
        resources={
            "couchdb": CouchDBResource(url=client.server_url),
            "postgres": PostgresResource(url=pg_url),
        },
    )


def run_backups(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
    assert result.success
    return result


def evaluations(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dg.AssetCheckEvaluation]:
    return {e.asset_key: e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME}


@pytest.mark.parametrize("pg_url", ["pg18-embedded", "pg15-system"], indirect=True)
def test_backups_restore_and_match_their_counts(couch_db: CouchClient, pg_url: str, backup_dir: Path) -> None:
    fill_postgres(pg_url)
    fill_couchdb(couch_db)
    defs = definitions(couch_db, pg_url)
    with dagster_instance() as instance:
        result = run_backups(defs, instance)
        checks = evaluations(result)
        pg_check, couch_check = checks[POSTGRES_BACKUP_KEY], checks[couchdb_backup_key(couch_db.db)]
        assert pg_check.passed, pg_check.description
        assert couch_check.passed, couch_check.description
        pg_meta = {k: v.value for k, v in pg_check.metadata.items()}
        assert pg_meta["rows_expected"] == pg_meta["rows_restored"] == 3000 + 777 + 1
        couch_meta = {k: v.value for k, v in couch_check.metadata.items()}
        # 453 docs written, one deleted; the conflict is one more revision, not one more doc.
        assert couch_meta["docs_in_dump"] == couch_meta["docs_restored"] == 452
        assert couch_meta["docs_in_couchdb_at_dump"] == 452
        assert couch_meta["revisions_written"] == 453

        # The dump holds what a restore needs: attachment bytes, the conflicting leaf, raw text.
        lines = {
            (doc["_id"], doc["_rev"]): doc
            for doc in couch_backup.read_lines(
                files.newest(backup_dir / "couchdb" / couch_db.db, ".ndjson.gz")
            )
        }
        photo = next(doc for (doc_id, _), doc in lines.items() if doc_id == "with-photo")
        assert base64.b64decode(photo["_attachments"]["photo.jpg"]["data"]) == bytes(range(256)) * 40
        assert ("doc-0001", "1-0000000000000000000000000000beef") in lines
        assert lines[next(k for k in lines if k[0] == "surrogate")]["text"].startswith("\ud83d")
        assert not any(doc_id == "doc-0002" for doc_id, _ in lines)

        # The scratch databases are gone.
        with psycopg.connect(pg_url) as conn:
            assert (
                conn.execute(
                    "SELECT count(*) FROM pg_database WHERE datname LIKE 'cht_restore_check_%'"
                ).fetchone()[0]
                == 0
            )
        all_dbs = requests.get(f"{couch_db.server_url}/_all_dbs", timeout=10).json()
        assert not [name for name in all_dbs if name.startswith("cht-restore-check-")]

        # Three more runs: only the newest KEEP of each are kept, each with its manifest.
        for _ in range(3):
            run_backups(defs, instance)
        for directory, suffix in (
            (backup_dir / "couchdb" / couch_db.db, ".ndjson.gz"),
            (next((backup_dir / "postgres").iterdir()), ".dump"),
        ):
            kept = files.backups(directory, suffix)
            assert len(kept) == KEEP
            assert sorted(p.name for p in directory.iterdir()) == sorted(
                [*(p.name for p in kept), *(p.name + ".json" for p in kept)]
            )


def test_a_dump_that_does_not_restore_fails_its_check(
    couch_db: CouchClient, pg_url: str, backup_dir: Path
) -> None:
    fill_postgres(pg_url)
    fill_couchdb(couch_db)
    defs = definitions(couch_db, pg_url)
    with dagster_instance() as instance:
        run_backups(defs, instance)
        # Rows lost from the newest dump's manifest's point of view: the drill must notice.
        pg_dump = files.newest(next((backup_dir / "postgres").iterdir()), ".dump")
        manifest = files.read_manifest(pg_dump)
        manifest["tables"]["raw.docs"] += 1
        files.write_manifest(pg_dump, manifest)
        couch_dump = files.newest(backup_dir / "couchdb" / couch_db.db, ".ndjson.gz")
        manifest = files.read_manifest(couch_dump)
        manifest["docs"] += 5
        files.write_manifest(couch_dump, manifest)
        checks_only = dg.Definitions(
            assets=backup_assets((couch_db.db,)),
            asset_checks=backup_checks((couch_db.db,)),
            jobs=[dg.define_asset_job("drills", selection=dg.AssetSelection.all_asset_checks())],
            resources=defs.resources,
        )
        result = checks_only.resolve_job_def("drills").execute_in_process(instance=instance)
        checks = evaluations(result)
        assert not checks[POSTGRES_BACKUP_KEY].passed
        differences = checks[POSTGRES_BACKUP_KEY].metadata["differences"].value
        assert differences == {"raw.docs": {"dump": 3001, "restored": 3000}}
        assert not checks[couchdb_backup_key(couch_db.db)].passed
        assert json.dumps(checks[couchdb_backup_key(couch_db.db)].metadata["docs_in_dump"].value) == "457"
