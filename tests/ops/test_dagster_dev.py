"""The deployment as its users see it: `dagster dev` over real pouchdb-server and PostgreSQL,
driven through the UI's GraphQL API, its alerts received by a loopback webhook.

One `dagster dev` for the module; the tests run in file order and build on each other:
the graph as the UI shows it, the update_seq sensor and the automation that follows it, a
materialization launched from the UI, then the three alerts (check, run, freshness). Superset is
not started: SUPERSET_URL points at a closed port, so Superset assets exist but cannot run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from cht_assets.couch.client import CouchClient
from cht_assets.defs.sensors import VIEWS_TAG
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, database_name, load_deployment
from cht_assets.replica.replicate import replicate_database
from cht_assets.servers.couchdb import PouchDBServer
from cht_assets.servers.dagster_dev import DagsterDev, start_dagster_dev
from cht_assets.servers.process import free_port
from tests.conftest import fresh_database
from tests.ops.receivers import Inbox, body, smtp_receiver, webhook_receiver

pytestmark = pytest.mark.timeout(900)

SUFFIXES = ("medic", "medic-sentinel", "medic-users-meta", "medic-logs")
GROUPS = {
    "couchdb",
    "raw",
    "base",
    "compat",
    "functions",
    "contactviews",
    "formviews",
    "useviews",
    "superset",
    "ops",
    "dictionary",
}
VIEW_GROUPS = {"base", "compat", "functions", "contactviews", "formviews", "useviews", "dictionary"}
SENSOR_SECONDS = 3
ASSET_NODES = """
{ assetNodes {
    assetKey { path } groupName kinds isMaterializable
    freshnessStatusInfo { freshnessStatus }
    internalFreshnessPolicy { ... on TimeWindowFreshnessPolicy { failWindowSeconds warnWindowSeconds } }
    automationCondition { label }
    assetChecksOrError { ... on AssetChecks { checks { name blocking executionForLatestMaterialization { status } } } }
} }
"""
AUTOMATION = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    sensors { name sensorState { status } }
    schedules { name scheduleState { status } }
} } }
  instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }
"""
OBSERVATIONS = """
query Obs($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
    assetObservations(limit: 1) { metadataEntries { label ... on TextMetadataEntry { text } } } } } }
"""


@dataclass
class Stack:
    dev: DagsterDev
    couch_url: str
    pg_url: str
    prefix: str
    alerts: Inbox
    mails: Inbox

    def db(self, suffix: str) -> str:
        return database_name(self.prefix, suffix)

    def raw_path(self, suffix: str) -> list[str]:
        return ["raw", self.db(suffix).replace("-", "_")]

    def couchdb_path(self, suffix: str) -> list[str]:
        return ["couchdb", self.db(suffix).replace("-", "_")]

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.pg_url) as conn:
            return conn.execute(sql, params).fetchall()

    def has_report(self, report: str) -> bool:
        try:
            return self.query("SELECT count(*) FROM form_metadata WHERE uuid = %s", report) == [(1,)]
        except psycopg.errors.UndefinedTable:  # the views have not been built yet
            return False

    def nodes(self) -> list[dict]:
        return self.dev.graphql(ASSET_NODES)["assetNodes"]

    def alerts_about(self, subject: str, state: str) -> list[str]:
        """Alerts whose first line is `[CHT pipeline] <subject>: <state>`."""
        head = f"[CHT pipeline] {subject}: {state}"
        return [text for text in self.alerts.snapshot() if text.splitlines()[0] == head]


@pytest.fixture(scope="module")
def stack(
    couch_server: PouchDBServer, embedded_pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    database = fresh_database(embedded_pg_admin_url)
    pg_url = next(database)
    prefix = f"ui{uuid.uuid4().hex[:6]}"
    load_deployment(couch_clients(couch_server.url), generate(11, 8), db_prefix=prefix)
    dbs = [database_name(prefix, suffix) for suffix in SUFFIXES]
    # Replicated once before the code location loads, so it generates the formviews of the forms.
    for db in dbs:
        replicate_database(pg_url, CouchClient(couch_server.url, db), source=db, all_sources=dbs)
    home = tmp_path_factory.mktemp("dagster_home")
    port = free_port()
    try:
        with webhook_receiver() as (hook_url, alerts), smtp_receiver() as (smtp_port, mails):
            env = {
                "COUCHDB_URL": couch_server.url,
                "COUCHDB_DBS": ",".join(dbs),
                "POSTGRES_URL": pg_url,
                "SUPERSET_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
                "ALERT_WEBHOOK_URL": hook_url,
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(smtp_port),
                "SMTP_FROM": "cht-pipeline@example.org",
                "ALERT_EMAIL_TO": "ops@example.org",
                "DAGSTER_UI_URL": f"http://127.0.0.1:{port}",
                "FRESHNESS_RAW_MINUTES": "2",  # warn after 1 minute, fail after 2
                "KEEPALIVE_MINUTES": "0",
                "COUCHDB_POLL_SECONDS": str(SENSOR_SECONDS),
                "AUTOMATION_INTERVAL_SECONDS": "5",
                "ALERT_SENSOR_SECONDS": str(SENSOR_SECONDS),
                "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",
                "BACKUP_DIR": str(home / "backups"),
            }
            dev = start_dagster_dev(home, env, port=port)
            try:
                yield Stack(dev, couch_server.url, pg_url, prefix, alerts, mails)
            finally:
                dev.stop()
    finally:
        database.close()  # drops the database


def by_key(nodes: list[dict]) -> dict[str, dict]:
    return {"/".join(node["assetKey"]["path"]): node for node in nodes}


def test_the_ui_shows_the_whole_graph(stack: Stack) -> None:
    nodes = by_key(stack.nodes())
    assert {node["groupName"] for node in nodes.values()} == GROUPS
    medic = "/".join(stack.raw_path("medic"))
    assert set(nodes[medic]["kinds"]) == {"postgres", "couchdb"}
    assert not nodes[f"couchdb/{stack.db('medic').replace('-', '_')}"]["isMaterializable"]
    assert "formviews/formview_pregnancy" in nodes  # generated from the replicated forms
    windows = {"raw": 120, "superset": 3600, "ops": 26 * 3600, **dict.fromkeys(VIEW_GROUPS, 3600)}
    for key, node in nodes.items():
        policy = node["internalFreshnessPolicy"]
        if node["groupName"] == "couchdb":
            assert policy is None, key
            continue
        assert policy["failWindowSeconds"] == windows[node["groupName"]], key
        assert node["freshnessStatusInfo"]["freshnessStatus"] in {"HEALTHY", "WARNING", "DEGRADED", "UNKNOWN"}
    assert nodes["useviews/useview_chw_activity"]["automationCondition"]["label"].startswith("eager")
    assert nodes["superset/datasets/useview_chw_activity"]["automationCondition"]["label"].startswith(
        "after upstream"
    )
    checks = {key: {c["name"]: c for c in n["assetChecksOrError"]["checks"]} for key, n in nodes.items()}
    # The reconciliation is the CouchDB asset's check: no materialization of the replica runs it.
    assert "matches_couchdb" not in checks[medic]
    assert not checks["/".join(stack.couchdb_path("medic"))]["matches_couchdb"]["blocking"]
    assert "restores" in checks["ops/postgres_backup"]
    assert checks["formviews/form_metadata"]["unique_key"]["blocking"]

    data = stack.dev.graphql(AUTOMATION)
    (repository,) = data["repositoriesOrError"]["nodes"]
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert sensors == dict.fromkeys(
        [
            "couchdb_update_seq",
            "automation",
            "alert_on_run_failure",
            "alert_on_check_failure",
            "alert_on_freshness",
            "form_definitions",
        ],
        "RUNNING",
    )
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
    assert schedules == {
        "daily_backups": "RUNNING",
        "daily_reconciliation": "RUNNING",
        "full_pipeline": "STOPPED",
    }
    daemons = {d["daemonType"]: d["healthy"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
    assert daemons.get("FRESHNESS_DAEMON") is True and daemons.get("SENSOR") is True


def test_a_new_report_is_replicated_and_reaches_the_views(stack: Stack) -> None:
    dev, db = stack.dev, stack.db("medic")
    # On its first tick the sensor replicates every database once.
    for suffix in SUFFIXES:
        dev.wait(
            lambda s=suffix: any(
                r["status"] == "SUCCESS"
                for r in dev.runs({"tags": [{"key": "cht/couchdb_db", "value": stack.db(s)}]})
            ),
            180,
            f"first replication of {suffix}",
        )
    client = CouchClient(stack.couch_url, db)
    chw = stack.query(
        "SELECT doc #>> '{contact,_id}' FROM raw.couchdb_docs WHERE source = %s "
        "AND doc ->> 'type' = 'data_record' AND doc #>> '{contact,_id}' IS NOT NULL LIMIT 1",
        db,
    )[0][0]
    report = f"report-{uuid.uuid4().hex[:8]}"
    client.bulk_docs(
        [
            {
                "_id": report,
                "type": "data_record",
                "form": "pnc",
                "contact": {"_id": chw},
                "reported_date": int(time.time() * 1000),
            }
        ]
    )
    seq = str(client.db_info()["update_seq"])
    run = dev.wait(
        lambda: next(iter(dev.runs({"tags": [{"key": "dagster/run_key", "value": f"{db}@{seq}"}]})), None),
        60,
        "the replication the sensor launches",
    )
    assert dev.wait_for_run(run["runId"])["status"] == "SUCCESS"
    assert stack.query(
        "SELECT _deleted FROM raw.couchdb_docs WHERE source = %s AND _id = %s", db, report
    ) == [(False,)]
    observed = dev.graphql(OBSERVATIONS, {"key": {"path": ["couchdb", db.replace("-", "_")]}})
    entries = observed["assetNodeOrError"]["assetObservations"][0]["metadataEntries"]
    assert {"label": "update_seq", "text": seq} in entries
    # The views follow: in the replica's run (the sensor has them join it), or, where another
    # run held them, in a run of their own once that one ended (or by their automation).
    dev.wait(
        lambda: stack.has_report(report),
        120,
        "the report in form_metadata",
    )
    automated = dev.runs({"tags": [{"key": "dagster/from_automation_condition", "value": "true"}]})
    due = dev.runs({"tags": [{"key": VIEWS_TAG, "value": db}]})
    assert any(
        ["formviews", "form_metadata"] in [a["path"] for a in r["assetSelection"] or []]
        for r in [run, *due, *automated]
    )


def test_a_materialization_launched_from_the_ui_succeeds(stack: Stack) -> None:
    stack.dev.wait_idle()
    nodes = stack.nodes()
    selection = [n["assetKey"]["path"] for n in nodes if n["groupName"] in VIEW_GROUPS | {"raw"}]
    run_id = stack.dev.launch(assets=selection)
    assert stack.dev.wait_for_run(run_id, 300)["status"] == "SUCCESS"
    after = by_key(stack.nodes())
    statuses = {
        c["executionForLatestMaterialization"]["status"]
        for key, node in after.items()
        if node["groupName"] in VIEW_GROUPS
        for c in node["assetChecksOrError"]["checks"]
        if c["executionForLatestMaterialization"]
    }
    assert "SUCCEEDED" in statuses and "FAILED" not in statuses


def test_a_failed_check_alerts_once_and_its_recovery_once(stack: Stack) -> None:
    dev, db, path = stack.dev, stack.db("medic"), stack.couchdb_path("medic")
    subject = f"check {'/'.join(path)}:matches_couchdb"
    (lost,) = stack.query(
        "DELETE FROM raw.couchdb_docs WHERE _id = (SELECT _id FROM raw.couchdb_docs WHERE source = %s "
        "AND doc ->> 'type' = 'person' ORDER BY _id LIMIT 1) AND source = %s RETURNING _id",
        db,
        db,
    )
    for _ in range(2):  # the second failure is the same state: no second alert
        run_id = dev.launch(assets=[], checks=[(path, "matches_couchdb")])
        assert dev.wait_for_run(run_id)["status"] == "SUCCESS"
        stack.alerts.wait_for(lambda _: stack.alerts_about(subject, "FAILED"), 60, "check alert")
    time.sleep(3 * SENSOR_SECONDS)
    (alert,) = stack.alerts_about(subject, "FAILED")
    assert f"missing_examples: {json.dumps([lost[0]])}" in alert
    assert f"Dagster: {dev.url}/assets/{'/'.join(path)}?view=checks&checkDetail=matches_couchdb" in alert

    repair = dev.launch(
        job="repair_replica", config={"ops": {"reconcile_and_repair": {"config": {"databases": [db]}}}}
    )
    assert dev.wait_for_run(repair)["status"] == "SUCCESS"
    assert stack.query(
        "SELECT count(*) FROM raw.couchdb_docs WHERE source = %s AND _id = %s", db, lost[0]
    ) == [(1,)]
    run_id = dev.launch(assets=[], checks=[(path, "matches_couchdb")])
    assert dev.wait_for_run(run_id)["status"] == "SUCCESS"
    stack.alerts.wait_for(lambda _: stack.alerts_about(subject, "PASSED again"), 60, "recovery alert")
    assert len(stack.alerts_about(subject, "FAILED")) == 1


def test_a_failed_run_alerts_once(stack: Stack) -> None:
    dev = stack.dev
    run_id = dev.launch(
        job="repair_replica",
        config={"ops": {"reconcile_and_repair": {"config": {"databases": ["no-such-db"]}}}},
    )
    assert dev.wait_for_run(run_id)["status"] == "FAILURE"
    subject = f"run {run_id[:8]}"
    (alert,) = stack.alerts.wait_for(lambda _: stack.alerts_about(subject, "FAILED"), 60, "run failure alert")
    assert "Job: repair_replica" in alert and "not among COUCHDB_DBS" in alert
    assert alert.endswith(f"Dagster: {dev.url}/runs/{run_id}")
    # The same alert by e-mail.
    title = alert.splitlines()[0]
    _, mail = stack.mails.wait_for(
        lambda items: next((m for m in items if m[1]["Subject"] == title), None), 30, "e-mail"
    )
    assert body(mail).strip() == alert
    time.sleep(3 * SENSOR_SECONDS)
    assert len(stack.alerts_about(subject, "FAILED")) == 1


def test_freshness_warn_then_fail_each_alerted_once(stack: Stack) -> None:
    # Nothing wrote to medic-logs since the launch above: its replica goes stale (warn 1 min,
    # fail 2 min), as a real deployment's would if its replication stopped. (It may have gone
    # WARN and back to PASS before that launch: every change of state is one alert.)
    path = "/".join(stack.raw_path("medic-logs"))
    subject = f"freshness {path}"
    stack.alerts.wait_for(lambda _: stack.alerts_about(subject, "FAIL"), 240, "freshness FAIL")
    time.sleep(3 * SENSOR_SECONDS)
    head = f"[CHT pipeline] {subject}: "
    alerts = [text for text in stack.alerts.snapshot() if text.startswith(head)]
    states = [text.splitlines()[0].removeprefix(head) for text in alerts]
    assert states[-2:] == ["WARN", "FAIL"]
    assert all(a != b for a, b in zip(states, states[1:], strict=False)), states  # never the same state twice
    assert set(states) <= {"WARN", "FAIL", "PASS again"}
    assert "Policy: materialized within 0:02:00 (warn after 0:01:00)" in alerts[-1]
    assert alerts[-1].endswith(f"Dagster: {stack.dev.url}/assets/{path}")
    assert by_key(stack.nodes())[path]["freshnessStatusInfo"]["freshnessStatus"] == "DEGRADED"
