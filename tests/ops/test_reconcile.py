"""Reconciliation against real pouchdb-server and PostgreSQL. pouchdb-server has no `_purge`
(it answers 400), so a purge is simulated from the replica's side: a live row CouchDB does not
have is exactly what a purge leaves behind; a row deleted from the replica is a lost write."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from cht_assets.couch.client import CouchClient
from cht_assets.defs.raw import build_raw_assets, couchdb_asset_key, raw_asset_key
from cht_assets.defs.reconcile import CHECK_NAME, RECONCILE_JOB, REPAIR_JOB, reconcile_checks, repair_job
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.defs.schedules import RECONCILE_SCHEDULE, reconcile_schedule
from cht_assets.replica.reconcile import ReconcileError, reconcile, repair
from cht_assets.settings import load_ops_settings
from tests.support.dagster import dagster_instance


@pytest.fixture
def source(couch_db: CouchClient, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> CouchClient:
    monkeypatch.setenv("COUCHDB_URL", couch_db.server_url)
    monkeypatch.setenv("COUCHDB_DBS", couch_db.db)
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    docs = [{"_id": f"d-{i:03}", "type": "data_record", "form": "pnc", "n": i} for i in range(40)]
    couch_db.bulk_docs(docs)
    return couch_db


def definitions(client: CouchClient, pg_url: str) -> dg.Definitions:
    """The raw asset, its reconciliation and their jobs and schedule, as the code location wires them."""
    return dg.Definitions(
        assets=build_raw_assets(),
        asset_checks=reconcile_checks((client.db,)),
        jobs=[repair_job(), dg.define_asset_job("replicate", selection=[raw_asset_key(client.db)])],
        schedules=[reconcile_schedule((client.db,), load_ops_settings())],
        resources={
            "couchdb": CouchDBResource(url=client.server_url),
            "postgres": PostgresResource(url=pg_url),
        },
    )


def replicate(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    result = defs.resolve_job_def("replicate").execute_in_process(instance=instance)
    assert result.success
    assert CHECK_NAME not in {e.check_name for e in result.get_asset_check_evaluations()}


def run_check(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    result = defs.resolve_job_def(RECONCILE_JOB).execute_in_process(instance=instance)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == CHECK_NAME
    return evaluation


def live_row(pg_url: str, db: str, doc_id: str) -> tuple[str, bool] | None:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT _rev, _deleted FROM raw.couchdb_docs WHERE source = %s AND _id = %s", (db, doc_id)
        ).fetchone()


def lose_and_purge(pg_url: str, db: str, lost: str, purged: list[str]) -> None:
    """A row lost from the replica, and rows CouchDB no longer has (as after `_purge`)."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("DELETE FROM raw.couchdb_docs WHERE source = %s AND _id = %s", (db, lost))
        for doc_id in purged:
            conn.execute(
                "INSERT INTO raw.couchdb_docs (source, _id, _rev, doc) VALUES (%s, %s, '1-abc', %s)",
                (db, doc_id, psycopg.types.json.Jsonb({"_id": doc_id, "type": "data_record", "form": "pnc"})),
            )


def test_check_finds_purged_and_lost_docs_and_the_job_repairs_them(source: CouchClient, pg_url: str) -> None:
    db = source.db
    defs = definitions(source, pg_url)
    with dagster_instance() as instance:
        replicate(defs, instance)
        assert run_check(defs, instance).passed
        lose_and_purge(pg_url, db, "d-007", ["ghost-1"])
        # Changes not replicated yet are not discrepancies: a new doc and a delete.
        source.bulk_docs([{"_id": "late-1", "type": "data_record"}])
        source._request("DELETE", "/d-010", params={"rev": source.get_doc("d-010")["_rev"]})

        found = run_check(defs, instance)
        assert not found.passed
        metadata = {key: value.value for key, value in found.metadata.items()}
        assert metadata["missing_examples"] == ["d-007"] and metadata["extra_examples"] == ["ghost-1"]
        assert metadata["missing"] == 1 and metadata["extra"] == 1
        assert metadata["pending_changes_set_aside"] == 2

        repaired = defs.resolve_job_def(REPAIR_JOB).execute_in_process(instance=instance)
        assert repaired.success
        (event,) = repaired.get_asset_materialization_events()
        assert event.asset_key == raw_asset_key(db)
        assert event.materialization.metadata["repaired_missing"].value == 1
        assert event.materialization.metadata["repaired_extra"].value == 1

        assert live_row(pg_url, db, "d-007") == (source.get_doc("d-007")["_rev"], False)
        assert live_row(pg_url, db, "ghost-1") == ("1-abc", True)  # a tombstone: history kept
        assert run_check(defs, instance).passed
        replicate(defs, instance)
        assert live_row(pg_url, db, "d-010")[1] is True
        after = reconcile(pg_url, source, db)
        assert after.ok and after.pending_changes == 0 and after.couch_docs == after.raw_live == 40


def test_repair_refuses_mass_tombstones_unless_forced(source: CouchClient, pg_url: str) -> None:
    db = source.db
    defs = definitions(source, pg_url)
    with dagster_instance() as instance:
        replicate(defs, instance)
        lose_and_purge(pg_url, db, "d-001", [f"ghost-{i}" for i in range(6)])  # 6 of 45 live rows
        with pytest.raises(ReconcileError, match="refusing to tombstone"):
            repair(pg_url, source, db)
        assert live_row(pg_url, db, "ghost-0") == ("1-abc", False)  # nothing changed
        found, done = repair(pg_url, source, db, force=True)
        assert (len(found.missing), len(found.extra)) == (1, 6)
        assert (done.fetched, done.tombstoned) == (1, 6)
        assert reconcile(pg_url, source, db).ok


def materialize_select_all(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """What `dagster asset materialize --select '*'` does (dagster._cli.asset): the implicit job
    of the selected assets, its checks left to Dagster's default."""
    repository = defs.get_repository_def()
    keys = dg.AssetSelection.from_coercible(["*"]).resolve(repository.asset_graph)
    job = repository.get_implicit_job_def_for_assets(keys)
    return job.execute_in_process(instance=instance, asset_selection=list(keys))


def test_materializing_never_runs_the_reconciliation_its_schedule_and_an_explicit_run_do(
    source: CouchClient, pg_url: str
) -> None:
    db = source.db
    defs = definitions(source, pg_url)
    check = dg.AssetCheckKey(couchdb_asset_key(db), CHECK_NAME)
    with dagster_instance() as instance:
        manual = materialize_select_all(defs, instance)
        assert manual.success
        assert [e.asset_key for e in manual.get_asset_materialization_events()] == [raw_asset_key(db)]
        assert CHECK_NAME not in {e.check_name for e in manual.get_asset_check_evaluations()}
        assert instance.get_latest_asset_check_evaluation_record(check) is None

        # The schedule's tick asks for the reconciliation job, which runs the check alone.
        schedule = defs.resolve_schedule_def(RECONCILE_SCHEDULE)
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
        assert schedule.cron_schedule == "0 2 * * *" and schedule.job_name == RECONCILE_JOB
        (request,) = schedule.evaluate_tick(dg.build_schedule_context(instance=instance)).run_requests
        job = defs.resolve_job_def(schedule.job_name)
        scheduled = job.execute_in_process(instance=instance, run_config=request.run_config)
        assert scheduled.success and not scheduled.get_asset_materialization_events()
        (evaluation,) = scheduled.get_asset_check_evaluations()
        assert (evaluation.asset_key, evaluation.check_name, evaluation.passed) == (
            check.asset_key,
            CHECK_NAME,
            True,
        )

        # Explicitly selected (the check's "Execute" in the UI is such a run): it runs.
        only_the_check = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection=set(), asset_check_selection={check}
        )
        explicit = only_the_check.execute_in_process(instance=instance)
        assert [e.check_name for e in explicit.get_asset_check_evaluations()] == [CHECK_NAME]
        assert instance.get_latest_asset_check_evaluation_record(check).run_id == explicit.run_id
