"""`cht-metrics` as Prometheus sees it: the real process scraped over HTTP while a generated
deployment is synced and built by the real Dagster graph into an instance that a real
`dagster-webserver` serves, then after a backup, a failed sync run and a failed check; and with
one of its sources down. The tests run in file order and build on each other."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import requests

from cht_assets.defs.backups import backup_assets, backup_checks
from cht_assets.defs.raw import build_raw_assets, raw_asset_key
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.defs.sensors import DB_TAG
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.metrics.dagster import raw_key
from cht_assets.metrics.postgres import seq_number
from cht_assets.replica.schema import WRITE_LOCK_KEY
from cht_assets.servers.couchdb import PROJECT_ROOT, PouchDBServer
from cht_assets.servers.dagster_dev import (
    DAGSTER_YAML,
    NO_COMPUTE_LOGS,
    DagsterDev,
    default_sigint,
    location_loaded,
)
from cht_assets.servers.process import free_port, port_open, spawn, stop_pid, wait_until
from cht_assets.sqlnames import quote_ident
from tests.conftest import fresh_database
from tests.integration.pipeline import Deployment, age_findings
from tests.integration.test_view_checks import duplicate_row
from tests.support import dagster as support
from tests.unit.test_metrics import Samples, samples, value

pytestmark = pytest.mark.timeout(600)

SEED, HOUSEHOLDS = 5, 8
BATCH_SIZE = 40  # several pages per database, so that scrapes fall between them
VIEW_GROUPS = {"compat", "functions", "contactviews", "formviews", "useviews"}


@dataclass
class Stack:
    deployment: Deployment
    env: dict[str, str]
    home: Path
    instance: dg.DagsterInstance
    metrics_url: str
    webserver_port: int
    webserver: DagsterDev | None = None
    assets: list[dg.AssetSpec | dg.AssetsDefinition] | None = None  # the code location's, once built

    def scrape(self, url: str | None = None) -> Samples:
        response = requests.get(url or self.metrics_url, timeout=30)
        response.raise_for_status()
        return samples(response.text)

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.deployment.pg_url) as conn:
            return conn.execute(sql, params).fetchall()

    def labels(self, db: str) -> dict[str, str]:
        return {"db": db, "cht_instance": "127.0.0.1"}


def start_metrics(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [str(Path(sys.executable).parent / "cht-metrics")]
    process = spawn(command, log=log, env={**os.environ, **env, "METRICS_PORT": str(port)})
    wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="cht-metrics", log=log)
    return process, f"http://127.0.0.1:{port}/metrics"


def start_webserver(stack: Stack) -> DagsterDev:
    """`dagster-webserver` alone over the instance the tests materialize into (no daemon: nothing
    runs by itself)."""
    log = stack.home / "webserver.log"
    command = [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml"]
    command += ["-h", "127.0.0.1", "-p", str(stack.webserver_port)]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**os.environ, **stack.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=default_sigint,
        )
    return DagsterDev(process, stack.webserver_port, stack.home, log)


@pytest.fixture(scope="module")
def stack(
    couch_server: PouchDBServer, embedded_pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    database = fresh_database(embedded_pg_admin_url)
    deployment = Deployment(couch_server.url, next(database), f"m{uuid.uuid4().hex[:7]}")
    load_deployment(couch_clients(couch_server.url), generate(SEED, HOUSEHOLDS), db_prefix=deployment.prefix)
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(DAGSTER_YAML + NO_COMPUTE_LOGS)
    webserver_port = free_port()
    env = {
        "COUCHDB_URL": couch_server.url,
        "COUCHDB_DBS": ",".join(deployment.dbs),
        "COUCHDB_BATCH_SIZE": str(BATCH_SIZE),
        "POSTGRES_URL": deployment.pg_url,
        "SUPERSET_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "DAGSTER_HOME": str(home),
        "DAGSTER_WEBSERVER_URL": f"http://127.0.0.1:{webserver_port}",
        "BACKUP_DIR": str(home / "backups"),
    }
    metrics, metrics_url = start_metrics(env, home / "metrics.log")
    stack = None
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            for name, setting in env.items():  # DAGSTER_HOME first: the instance's dagster.yaml reads it
                monkeypatch.setenv(name, setting)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                stack = Stack(deployment, env, home, instance, metrics_url, webserver_port)
                yield stack
    finally:
        if stack and stack.webserver:
            stack.webserver.stop()
        stop_pid(metrics.pid)
        database.close()


def sync(stack: Stack) -> None:
    """One run per database, tagged as the update_seq sensor tags them."""
    raw = build_raw_assets()
    for db in stack.deployment.dbs:
        dg.materialize(
            raw,
            resources=stack.deployment.resources(),
            instance=stack.instance,
            selection=[raw_asset_key(db)],
            tags={DB_TAG: db},
        )


def update_seq(stack: Stack, db: str) -> int:
    seq = stack.deployment.client(db.removeprefix(stack.deployment.prefix)).db_info()["update_seq"]
    number = seq_number(str(seq))
    assert number is not None
    return number


def waiting_pages(gate: psycopg.Connection) -> int:
    """Sync transactions waiting for the write lock the gate holds."""
    query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted"
    return gate.execute(query, (WRITE_LOCK_KEY,)).fetchone()[0]


def test_scrapes_during_a_sync_follow_the_checkpoint_while_dagster_is_down(stack: Stack) -> None:
    medic = stack.labels(stack.deployment.dbs[0])
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sync(stack)
        except BaseException as exc:  # reported by the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    # Every page of a sync takes the write lock shared: holding it exclusively stops the sync
    # between two pages, so that a scrape sees it half done.
    with psycopg.connect(stack.deployment.pg_url, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK_KEY,))
        thread.start()
        wait_until(lambda: waiting_pages(gate) == 1, timeout=60, what="the sync's first page")
        found = stack.scrape()
        assert value(found, "cht_up", source="postgres") == 1
        assert value(found, "cht_up", source="dagster") == 0  # the webserver is not started yet
        assert value(found, "couch2pg_progress_sequence", **medic) is None
        gate.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK_KEY,))
        gate.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK_KEY,))  # once that page committed
        first_page = value(stack.scrape(), "couch2pg_progress_sequence", **medic)
        assert first_page is not None and 0 < first_page < update_seq(stack, stack.deployment.dbs[0])
        gate.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK_KEY,))
    seen: dict[str, list[float]] = {}
    while thread.is_alive():
        found = stack.scrape()
        assert value(found, "cht_up", source="postgres") == 1
        for db in stack.deployment.dbs:
            number = value(found, "couch2pg_progress_sequence", **stack.labels(db))
            if number is not None:
                seen.setdefault(db, []).append(number)
        time.sleep(0.1)
    thread.join()
    assert not failure, failure
    # The sequence only moves forward, page by page.
    assert all(numbers == sorted(numbers) for numbers in seen.values()), seen

    found = stack.scrape()
    for db in stack.deployment.dbs:
        labels = stack.labels(db)
        assert value(found, "couch2pg_progress_sequence", **labels) == update_seq(stack, db), db
        assert value(found, "couch2pg_progress_pending", **labels) == 0, db
        assert value(found, "couch2pg_up", **labels) == 1, db
        ((rows,),) = stack.query("SELECT count(*) FROM raw.couchdb_docs WHERE source = %s", db)
        assert value(found, "cht_asset_rows", asset=raw_key(db), group="raw") == rows, db


def test_after_the_views_are_built_dagster_metrics_are_served(stack: Stack) -> None:
    stack.webserver = start_webserver(stack)  # loads while the views are built
    stack.assets = assets = support.location_assets()
    # Not the raw replicas again: their last run stays the sync (with its docs/s).
    views = [key for asset in assets if isinstance(asset, dg.AssetsDefinition) for key in asset.keys]
    views = [key for key in views if key.path[0] != "raw"]
    result = support.materialize(
        assets, stack.deployment.resources(), instance=stack.instance, selection=views
    )
    assert result.success
    stack.webserver.wait(lambda: location_loaded(stack.webserver), 180, "dagster-webserver")

    found = stack.scrape()
    assert value(found, "cht_up", source="dagster") == 1
    assert value(found, "cht_up", source="postgres") == 1
    for db in stack.deployment.dbs:
        labels = stack.labels(db)
        assert 0 <= value(found, "cht_sync_age_seconds", **labels) < 600, db
        assert value(found, "cht_sync_failed_runs_total", **labels) == 0, db
    medic = stack.labels(stack.deployment.dbs[0])
    assert value(found, "cht_sync_docs_per_second", **medic) > 0

    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    ages = {
        dict(labels)["asset"]: age
        for (name, labels), age in found.items()
        if name == "cht_asset_materialization_age_seconds"
    }
    assert {key for key in materialized if key.split("/")[0] in VIEW_GROUPS} <= set(ages)
    assert all(0 <= age < 600 for age in ages.values())

    states: dict[str, float] = {}
    for (name, labels), flag in found.items():
        if name == "cht_asset_freshness_state":
            asset = dict(labels)["asset"]
            states[asset] = states.get(asset, 0) + flag
    assert states and set(states.values()) == {1}  # one state per asset
    assert "useviews/useview_chw_activity" in states

    checks = {labels: failed for (name, labels), failed in found.items() if name == "cht_asset_check_failed"}
    assert checks and set(checks.values()) == {0}

    counted = stack.query(
        "SELECT object, layer, row_count FROM cht_meta.refresh_state WHERE row_count IS NOT NULL"
    )
    assert counted
    for name, layer, _ in counted:
        ((rows,),) = stack.query(f"SELECT count(*) FROM {quote_ident(name)}")
        assert value(found, "cht_asset_rows", asset=f"{layer}/{name}", group=layer) == rows, name


def test_a_backup_and_its_restore_drill(stack: Stack) -> None:
    dbs = tuple(stack.deployment.dbs)
    assets = [backup_assets(dbs)[0], backup_checks(dbs)[0]]  # PostgreSQL's
    result = dg.materialize(assets, resources=stack.deployment.resources(), instance=stack.instance)
    assert result.success
    found = stack.scrape()
    backup = {
        "kind": "postgres",
        "database": psycopg.conninfo.conninfo_to_dict(stack.deployment.pg_url)["dbname"],
    }
    assert 0 <= value(found, "cht_backup_age_seconds", **backup) < 300
    assert value(found, "cht_backup_size_bytes", **backup) > 0
    assert value(found, "cht_backup_restore_check_passed", **backup) == 1


def test_a_failed_sync_run_is_counted_for_its_database(stack: Stack) -> None:
    db = stack.deployment.dbs[1]
    closed = psycopg.conninfo.make_conninfo(stack.deployment.pg_url, port=free_port())
    resources = {
        "couchdb": CouchDBResource(url=stack.deployment.couch_url),
        "postgres": PostgresResource(url=closed),
    }
    result = dg.materialize(
        build_raw_assets(),
        resources=resources,
        instance=stack.instance,
        selection=[raw_asset_key(db)],
        tags={DB_TAG: db},
        raise_on_error=False,
    )
    assert not result.success
    found = stack.scrape()
    assert value(found, "cht_sync_failed_runs_total", **stack.labels(db)) == 1
    assert value(found, "cht_sync_failed_runs_total", **stack.labels(stack.deployment.dbs[0])) == 0


def test_a_failed_check_is_exported(stack: Stack) -> None:
    with psycopg.connect(stack.deployment.pg_url) as conn:
        duplicate_row(conn, "contactview_metadata", "type = 'district_hospital'")  # committed
    age_findings(stack.deployment.pg_url)  # the rows moved behind the versions' back
    assert stack.assets is not None
    key = dg.AssetKey(["contactviews", "contactview_hospital"])
    result = support.materialize(
        stack.assets,
        stack.deployment.resources(),
        instance=stack.instance,
        selection=[key],
        raise_on_error=False,
    )
    assert any(not e.passed for e in result.get_asset_check_evaluations())
    found = stack.scrape()
    hospital = {"asset": "contactviews/contactview_hospital", "group": "contactviews"}
    assert value(found, "cht_asset_check_failed", **hospital, check="unique_key", severity="ERROR") == 1
    failed = sum(flag for (name, _), flag in found.items() if name == "cht_asset_check_failed")
    assert failed >= 1


def test_with_postgresql_down_the_rest_is_still_served(stack: Stack) -> None:
    closed = psycopg.conninfo.make_conninfo(stack.deployment.pg_url, port=free_port())
    env = {**stack.env, "POSTGRES_URL": closed}
    process, url = start_metrics(env, stack.home / "metrics-no-postgres.log")
    try:
        found = stack.scrape(url)
    finally:
        stop_pid(process.pid)
    assert value(found, "cht_up", source="postgres") == 0
    assert value(found, "cht_up", source="dagster") == 1
    assert value(found, "cht_up", source="backups") == 1
    medic = stack.labels(stack.deployment.dbs[0])
    assert value(found, "couch2pg_progress_sequence", **medic) is None
    assert value(found, "cht_sync_age_seconds", **medic) is not None
    assert value(found, "couch2pg_up", **medic) == 1  # from Dagster's last successful sync
    assert any(name == "cht_asset_check_failed" for name, _ in found)
    assert not any(name == "cht_asset_rows" for name, _ in found)
