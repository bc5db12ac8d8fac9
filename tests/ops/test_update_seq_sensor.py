"""The update_seq sensor against a real pouchdb-server, evaluated as the daemon would."""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import dagster as dg
import pytest

from cht_assets.couch.client import CouchClient
from cht_assets.defs.raw import build_raw_assets, couchdb_asset_key, raw_asset_key
from cht_assets.defs.reconcile import CHECK_NAME as RECONCILE_CHECK
from cht_assets.defs.reconcile import reconcile_checks
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.defs.sensors import DB_TAG, UPDATE_SEQ_SENSOR, VIEWS_DUE, VIEWS_TAG, update_seq_sensor
from cht_assets.servers.process import free_port
from tests.support.dagster import dagster_instance


@pytest.fixture
def source(couch_db: CouchClient, monkeypatch: pytest.MonkeyPatch) -> CouchClient:
    monkeypatch.setenv("COUCHDB_URL", couch_db.server_url)
    monkeypatch.setenv("COUCHDB_DBS", couch_db.db)
    couch_db.bulk_docs([{"_id": f"d{i}"} for i in range(3)])
    return couch_db


def tick(sensor: dg.SensorDefinition, defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    with dg.build_sensor_context(
        instance=instance,
        definitions=defs,
        cursor=cursor,
        resources={
            "couchdb": CouchDBResource(url=defs.resources["couchdb"].url),
            "postgres": PostgresResource(),
        },
    ) as context:
        return sensor.evaluate_tick(context)


def test_a_moved_update_seq_requests_one_replication_per_seq(source: CouchClient) -> None:
    db, key = source.db, raw_asset_key(source.db)
    sensor = update_seq_sensor((db,), 2)  # each tick watches for a change for up to 1 s
    defs = dg.Definitions(
        assets=build_raw_assets(),
        asset_checks=reconcile_checks((db,)),
        sensors=[sensor],
        resources={"couchdb": CouchDBResource(url=source.server_url), "postgres": PostgresResource()},
    )
    with dagster_instance() as instance:
        first = tick(sensor, defs, instance, None)
        (request,) = first.run_requests
        seq = str(source.db_info()["update_seq"])
        assert request.run_key == f"{db}@{seq}"
        assert request.asset_selection == [key]
        # The asset's own checks ride along; the daily reconciliation (the CouchDB asset's) does not.
        own_checks = defs.resolve_asset_graph().get_check_keys_for_assets({key})
        assert set(request.asset_check_keys) == own_checks
        assert RECONCILE_CHECK not in {c.name for c in request.asset_check_keys}
        assert request.tags[DB_TAG] == db
        assert json.loads(first.cursor) == {db: seq}
        (observation,) = first.asset_events
        assert observation.asset_key == couchdb_asset_key(db)
        assert observation.metadata["update_seq"].value == seq
        assert observation.metadata["doc_count"].value == 3

        started = time.monotonic()
        idle = tick(sensor, defs, instance, first.cursor)
        assert not idle.run_requests and idle.cursor == first.cursor
        # It watched for a change, then gave up on time (pouchdb-server ignores the longpoll's
        # timeout: the client keeps the deadline).
        assert 0.9 <= time.monotonic() - started < 10

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
    sensor = update_seq_sensor(("medic",), 2)
    defs = dg.Definitions(
        assets=build_raw_assets(),
        sensors=[sensor],
        resources={"couchdb": CouchDBResource(url=url), "postgres": PostgresResource()},
    )
    with dagster_instance() as instance:
        result = tick(sensor, defs, instance, '{"medic": "7"}')
    assert not result.run_requests and result.cursor == '{"medic": "7"}'


@pytest.fixture
def location(source: CouchClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dg.Definitions, str]]:
    """The code location over two databases (`source` and a second one), without formviews."""
    other = CouchClient(source.server_url, f"test-{uuid.uuid4().hex[:10]}")
    other.create_db()
    other.bulk_docs([{"_id": "x"}])
    monkeypatch.setenv("COUCHDB_DBS", f"{source.db},{other.db}")
    monkeypatch.setenv("COUCHDB_POLL_SECONDS", "2")  # an idle tick watches for 1 s, not 14
    monkeypatch.setenv("POSTGRES_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    sys.modules.pop("cht_assets.definitions", None)
    try:
        yield importlib.import_module("cht_assets.definitions").defs, other.db
    finally:
        sys.modules.pop("cht_assets.definitions", None)
        other.delete_db()


def test_the_views_join_one_replication_run_superset_and_waiting_views_do_not(
    source: CouchClient, location: tuple[dg.Definitions, str]
) -> None:
    defs, other = location
    sensor = defs.resolve_sensor_def(UPDATE_SEQ_SENSOR)
    graph = defs.resolve_asset_graph()

    def groups(request: dg.RunRequest) -> set[str]:
        return {graph.get(key).group_name for key in request.asset_selection}

    with dagster_instance() as instance:

        def tick(cursor: str | None) -> dg.SensorExecutionData:
            with dg.build_sensor_context(
                instance=instance,
                definitions=defs,
                cursor=cursor,
                resources={"couchdb": CouchDBResource(url=source.server_url), "postgres": PostgresResource()},
            ) as context:
                return sensor.evaluate_tick(context)

        # A first start: the functions the views read were never built. The replicas run alone
        # and the automation builds the views once their upstream exists.
        fresh = tick(None)
        assert [r.asset_selection for r in fresh.run_requests] == [
            [raw_asset_key(source.db)],
            [raw_asset_key(other)],
        ]

        # The automation's first views run in progress when a database moves: replicated alone,
        # its views due; that run over with their upstream still missing, they are no longer
        # due (the automation builds them once it exists), never a run that would fail.
        job = defs.resolve_implicit_global_asset_job_def()
        form_metadata = dg.AssetKey(["formviews", "form_metadata"])
        first_views = instance.create_run_for_job(job, asset_selection=frozenset([form_metadata]))
        source.bulk_docs([{"_id": "first-start-report", "type": "data_record"}])
        moved = tick(fresh.cursor)
        assert [r.asset_selection for r in moved.run_requests] == [[raw_asset_key(source.db)]]
        assert json.loads(moved.cursor)[VIEWS_DUE] == [source.db]
        instance.report_run_canceled(first_views)
        over = tick(moved.cursor)
        assert over.run_requests == [] and VIEWS_DUE not in json.loads(over.cursor)
        for key in graph.materializable_asset_keys:
            if graph.get(key).group_name not in {"raw", "superset", "ops"}:
                instance.report_runless_asset_event(dg.AssetMaterialization(key))
        first = tick(None)  # as if both moved again
        # Both databases moved: the views join the first run; the second database is replicated
        # alone and its views are due (in the cursor), so no two runs refresh them.
        joined, alone = first.run_requests
        assert joined.asset_selection[0] == raw_asset_key(source.db)
        assert alone.asset_selection == [raw_asset_key(other)] and alone.tags[DB_TAG] == other
        assert json.loads(first.cursor)[VIEWS_DUE] == [other]
        assert {"formviews", "useviews"} <= groups(joined) and not groups(joined) & {"superset", "ops"}
        assert dg.AssetKey(["useviews", "useview_chw_activity"]) in joined.asset_selection
        # A view waiting for a form the deployment lacks stays out, as the automation leaves it.
        assert dg.AssetKey(["useviews", "useview_pregnancy"]) not in joined.asset_selection
        checks = set(joined.asset_check_keys)
        assert dg.AssetCheckKey(dg.AssetKey(["formviews", "form_metadata"]), "unique_key") in checks

        # While a run refreshes the views, a moved database is replicated at once (never kept
        # waiting behind view runs) and its views are due; once that run ended, they run alone.
        views = [key for key in joined.asset_selection if key != raw_asset_key(source.db)]
        run = instance.create_run_for_job(job, asset_selection=frozenset(views))
        source.bulk_docs([{"_id": "new-report", "type": "data_record"}])

        busy = tick(first.cursor)
        (replica,) = busy.run_requests
        assert replica.asset_selection == [raw_asset_key(source.db)]
        assert json.loads(busy.cursor)[VIEWS_DUE] == sorted([source.db, other])
        assert tick(busy.cursor).run_requests == []  # still refreshing: the views stay due
        instance.report_run_canceled(run)
        due = tick(busy.cursor)
        (views_run,) = due.run_requests  # one views run at a time
        (db,) = [d for d in (source.db, other) if views_run.tags.get(VIEWS_TAG) == d]
        assert views_run.run_key == f"{db}@{json.loads(busy.cursor)[db]}/views"
        downstream = dg.AssetSelection.assets(raw_asset_key(db)).downstream().resolve(graph)
        assert views_run.asset_selection and set(views_run.asset_selection) <= downstream - {
            raw_asset_key(db)
        }
        assert {"formviews", "useviews"} <= groups(views_run) and not groups(views_run) & {"superset", "ops"}
        assert json.loads(due.cursor)[VIEWS_DUE] == [d for d in (source.db, other) if d != db]


def test_a_change_during_the_watch_is_seen_at_once(source: CouchClient) -> None:
    """The tick's longpoll answers when the change arrives, not when the interval ends."""
    db = source.db
    sensor = update_seq_sensor((db,), 20)  # watches for up to MAX_WATCH_SECONDS
    defs = dg.Definitions(
        assets=build_raw_assets(),
        sensors=[sensor],
        resources={"couchdb": CouchDBResource(url=source.server_url), "postgres": PostgresResource()},
    )
    with dagster_instance() as instance:
        first = tick(sensor, defs, instance, None)
        writer = threading.Timer(1.0, source.bulk_docs, args=([{"_id": "during-the-watch"}],))
        writer.start()
        started = time.monotonic()
        try:
            watched = tick(sensor, defs, instance, first.cursor)
        finally:
            writer.join()
        took = time.monotonic() - started
    (request,) = watched.run_requests
    assert request.run_key == f"{db}@{source.db_info()['update_seq']}"
    assert took < 10, f"the change was seen after {took:.1f} s"
