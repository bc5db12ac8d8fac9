"""The update_seq sensor against a real pouchdb-server, evaluated as the daemon would."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from cht_assets.couch.client import CouchClient
from cht_assets.defs.raw import build_raw_assets, couchdb_asset_key, raw_asset_key
from cht_assets.defs.reconcile import CHECK_NAME as RECONCILE_CHECK
from cht_assets.defs.reconcile import reconcile_checks
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.defs.sensors import DB_TAG, update_seq_sensor
from tests.support.dagster import dagster_instance


@pytest.fixture
def source(couch_db: CouchClient, monkeypatch: pytest.MonkeyPatch) -> CouchClient:
    monkeypatch.setenv("COUCHDB_URL", couch_db.server_url)
    monkeypatch.setenv("COUCHDB_DBS", couch_db.db)
    couch_db.bulk_docs([{"_id": f"d{i}"} for i in range(3)])
    return couch_db


def tick(sensor: dg.SensorDefinition, defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance,
        definitions=defs,
        cursor=cursor,
        resources={"couchdb": CouchDBResource(url=defs.resources["couchdb"].url)},
    )
    return sensor.evaluate_tick(context)


def test_a_moved_update_seq_requests_one_replication_per_seq(source: CouchClient) -> None:
    db, key = source.db, raw_asset_key(source.db)
    sensor = update_seq_sensor((db,), 15)
    defs = dg.Definitions(
        assets=build_raw_assets(),
        asset_checks=reconcile_checks((db,), "0 2 * * *"),
        sensors=[sensor],
        resources={"couchdb": CouchDBResource(url=source.server_url), "postgres": PostgresResource()},
    )
    with dagster_instance() as instance:
        first = tick(sensor, defs, instance, None)
        (request,) = first.run_requests
        seq = str(source.db_info()["update_seq"])
        assert request.run_key == f"{db}@{seq}"
        assert request.asset_selection == [key]
        # The asset's own checks ride along; the daily reconciliation does not.
        own_checks = defs.resolve_asset_graph().get_check_keys_for_assets({key})
        assert set(request.asset_check_keys) == {c for c in own_checks if c.name != RECONCILE_CHECK}
        assert request.tags[DB_TAG] == db
        assert json.loads(first.cursor) == {db: seq}
        (observation,) = first.asset_events
        assert observation.asset_key == couchdb_asset_key(db)
        assert observation.metadata["update_seq"].value == seq
        assert observation.metadata["doc_count"].value == 3

        idle = tick(sensor, defs, instance, first.cursor)
        assert not idle.run_requests and idle.cursor == first.cursor

        source.bulk_docs([{"_id": "new-report", "type": "data_record"}])
        moved = tick(sensor, defs, instance, first.cursor)
        (request,) = moved.run_requests
        assert request.run_key == f"{db}@{source.db_info()['update_seq']}"

        # While a run that plans to replicate the database is unfinished, the sensor waits and
        # keeps the old seq, so the next tick asks again.
        job = defs.resolve_implicit_global_asset_job_def()
        run = instance.create_run_for_job(job, asset_selection=frozenset({key}))
        assert run.status == dg.DagsterRunStatus.NOT_STARTED
        source.bulk_docs([{"_id": "another-report"}])
        waiting = tick(sensor, defs, instance, moved.cursor)
        assert not waiting.run_requests and waiting.cursor == moved.cursor
        instance.report_run_canceled(run)
        resumed = tick(sensor, defs, instance, moved.cursor)
        assert [r.run_key for r in resumed.run_requests] == [f"{db}@{source.db_info()['update_seq']}"]


def test_an_unreachable_couchdb_is_logged_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    from cht_assets.servers.process import free_port

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("COUCHDB_DBS", "medic")
    sensor = update_seq_sensor(("medic",), 15)
    defs = dg.Definitions(
        assets=build_raw_assets(),
        sensors=[sensor],
        resources={"couchdb": CouchDBResource(url=url), "postgres": PostgresResource()},
    )
    with dagster_instance() as instance:
        result = tick(sensor, defs, instance, '{"medic": "7"}')
    assert not result.run_requests and result.cursor == '{"medic": "7"}'
