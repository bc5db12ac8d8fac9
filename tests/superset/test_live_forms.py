"""Forms that arrive while it runs, and forms a deployment lacks, under a real `dagster dev` with
the real Superset, at the default polling intervals, with no click and no reload by the test.

The deployment is the demo's minus its pregnancy and delivery form docs (their reports stay):
the warehouse starts empty, `dagster dev` builds everything by itself and `useview_pregnancy`
waits. Then a default-config form the demo lacks (the mother's PNC danger-sign follow-up) and its
sample reports are uploaded with the two missing forms: within 3 minutes each has its formview,
asset, checks and Superset dataset. Then a new version of that form adds a field, and its column
appears.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from cht_assets.bi.client import SupersetClient
from cht_assets.couch.client import CouchClient
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.servers.dagster_dev import DagsterDev, start_dagster_dev
from cht_assets.servers.process import free_port
from cht_assets.servers.superset import SupersetServer
from cht_assets.xforms.formview import formview_columns
from cht_assets.xforms.parse import parse_xform
from tests.conftest import fresh_database
from tests.integration.pipeline import SUFFIXES
from tests.superset.conftest import SESSION, standin_kept

pytestmark = [pytest.mark.superset, pytest.mark.timeout(1500)]

SEED, HOUSEHOLDS = 3, 30
ABSENT = ("form:pregnancy", "form:delivery")
NEW_FORM = "pnc_danger_sign_follow_up_mother"  # a default-config form the demo lacks
WITHIN = 180  # seconds: the promise, at default settings
MANAGER, MANAGER_PW_ENV = f"live_mgr_{SESSION}", "CHT_TEST_PW_LIVE"
MANAGER_PW = f"live-{SESSION}"
NODES = """
{ assetNodes { assetKey { path } description groupName isMaterializable
    assetMaterializations(limit: 1) { timestamp }
    assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""


@dataclass
class Live:
    dev: DagsterDev
    pg_url: str
    medic: CouchClient
    absent_forms: list[dict[str, Any]]
    health_center: str  # the manager's place
    database_name: str

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.pg_url) as conn:
            return conn.execute(sql, params).fetchall()

    def count(self, relation: str) -> int | None:
        try:
            return self.query(f'SELECT count(*) FROM "{relation}"')[0][0]
        except psycopg.errors.UndefinedTable:
            return None

    def nodes(self) -> dict[str, dict[str, Any]]:
        return {"/".join(n["assetKey"]["path"]): n for n in self.dev.graphql(NODES)["assetNodes"]}

    def materialized(self, key: str) -> bool:
        node = self.nodes().get(key)
        return bool(node and node["assetMaterializations"])

    def failed_runs(self) -> list[str]:
        return [run["runId"] for run in self.dev.runs({"statuses": ["FAILURE"]})]


def shared_doc(shared_dir: Path, name: str) -> dict[str, Any]:
    doc = json.loads((shared_dir / "cht-sample-docs" / "medic" / "forms" / name).read_text())
    doc.pop("_rev", None)
    return doc


def new_form_reports(shared_dir: Path) -> list[dict[str, Any]]:
    reports = json.loads((shared_dir / "cht-sample-docs" / "medic" / "reports.json").read_text())
    return [{k: v for k, v in r.items() if k != "_rev"} for r in reports if r.get("form") == NEW_FORM]


def xform_of(doc: dict[str, Any]) -> str:
    return base64.b64decode(doc["_attachments"]["xml"]["data"]).decode()


def poll(found: Callable[[], Any], live: Live, timeout: float, what: str) -> float:
    """Seconds until `found()` is true; fails naming `what` and the runs that failed."""
    started = time.monotonic()
    live.dev.wait(found, timeout, what)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest,
    couch_server,
    embedded_pg_admin_url: str,
    superset_server: SupersetServer,
    admin: SupersetClient,
    superset_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:
    prefix = f"live{uuid.uuid4().hex[:6]}"
    try:
        with (
            standin_kept(request, admin),
            contextlib.contextmanager(fresh_database)(embedded_pg_admin_url) as pg_url,
        ):
            generated = generate(SEED, HOUSEHOLDS)
            load_deployment(couch_clients(couch_server.url), generated, db_prefix=prefix)
            medic = CouchClient(couch_server.url, prefix)
            absent = [
                {k: v for k, v in doc.items() if k != "_rev"}
                for doc in generated["medic"]
                if doc["_id"] in ABSENT
            ]
            rows = medic._request("POST", "/_all_docs", json={"keys": list(ABSENT)}).json()["rows"]
            medic.bulk_docs([{"_id": r["id"], "_rev": r["value"]["rev"], "_deleted": True} for r in rows])
            centers = [d for d in generated["medic"] if d.get("type") == "health_center"]
            home = tmp_path_factory.mktemp("live_dagster_home")
            access = home / "access.yaml"
            access.write_text(
                yaml.safe_dump(
                    {
                        "levels": ["district_hospital", "health_center", "clinic"],
                        "managers": [
                            {
                                "user": MANAGER,
                                "password_env": MANAGER_PW_ENV,
                                "places": [{"uuid": centers[0]["_id"]}],
                            }
                        ],
                    }
                )
            )
            port = free_port()
            database_name = f"CHT live {SESSION}"
            env = {
                **superset_env,
                "COUCHDB_URL": couch_server.url,
                "COUCHDB_DBS": ",".join(prefix + suffix for suffix in SUFFIXES),
                "POSTGRES_URL": pg_url,
                "SUPERSET_URL": superset_server.url,
                "SUPERSET_DATABASE_NAME": database_name,  # datasets of its own
                "SUPERSET_ACCESS_FILE": str(access),
                MANAGER_PW_ENV: MANAGER_PW,
                "DAGSTER_UI_URL": f"http://127.0.0.1:{port}",
                "BACKUP_DIR": str(home / "backups"),
            }
            dev = start_dagster_dev(home, env, port=port)
            try:
                yield Live(dev, pg_url, medic, absent, centers[0]["_id"], database_name)
            finally:
                dev.stop()
    finally:
        for suffix in SUFFIXES:
            with contextlib.suppress(Exception):
                CouchClient(couch_server.url, prefix + suffix).delete_db()


def superset_dataset(admin: SupersetClient, live: Live, table: str) -> dict[str, Any] | None:
    found = [
        d
        for d in admin.find("dataset", table_name=table)
        if d["database"]["database_name"] == live.database_name
    ]
    return found[0] if found else None


def test_a_fresh_warehouse_builds_itself_and_absent_forms_wait(live: Live, admin: SupersetClient) -> None:
    # Nothing was materialized before `dagster dev` started: the sensors and automation do it all.
    published = ("useview_chw_activity", "useview_population")
    poll(
        lambda: (
            live.materialized("superset/access") and all(superset_dataset(admin, live, t) for t in published)
        ),
        live,
        600,
        "first build",
    )
    live.dev.wait_idle(timeout=300)
    assert live.failed_runs() == []
    # "Materialize all" from the UI (but the backups): the run succeeds, the use view still waits.
    every = [
        n["assetKey"]["path"]
        for n in live.nodes().values()
        if n["isMaterializable"] and n["groupName"] != "ops"
    ]
    assert live.dev.wait_for_run(live.dev.launch(assets=every), timeout=600)["status"] == "SUCCESS"
    live.dev.wait_idle(timeout=300)
    nodes = live.nodes()
    waiting = nodes["useviews/useview_pregnancy"]
    assert waiting["assetMaterializations"] == []
    assert "Waiting for forms `delivery`, `pregnancy`" in waiting["description"]
    assert live.count("useview_pregnancy") is None
    for view in ("formview_pnc", "formview_assessment", "useview_chw_activity", "useview_population"):
        assert nodes[f"{'formviews' if view.startswith('formview') else 'useviews'}/{view}"][
            "assetMaterializations"
        ]

    # Access ran although a dataset's view waits: the manager sees their area only, everywhere.
    with SupersetClient(admin.url, MANAGER, MANAGER_PW) as manager:
        for table in published:
            dataset = superset_dataset(admin, live, table)
            assert dataset is not None, table
            body = {
                "datasource": {"id": dataset["id"], "type": "table"},
                "queries": [{"columns": ["area_uuids"], "metrics": None, "row_limit": 100000, "orderby": []}],
                "result_format": "json",
                "result_type": "full",
            }
            rows = manager.post("/api/v1/chart/data", body)["result"][0]["data"]
            areas = [row["area_uuids"] for row in rows]
            mine = live.query(f"SELECT count(*) FROM {table} WHERE %s = ANY(area_uuids)", live.health_center)[
                0
            ][0]
            total = live.count(table)
            assert len(areas) == mine and 0 < mine < total, (table, len(areas), mine, total)
            assert all(live.health_center in str(area) for area in areas), table


def test_forms_that_arrive_are_built_within_three_minutes(
    live: Live, admin: SupersetClient, shared_dir: Path
) -> None:
    form = shared_doc(shared_dir, "form~pnc_danger_sign_follow_up_mother.json")
    reports = new_form_reports(shared_dir)
    pregnancy_reports = sum(1 for d in live.medic.all_docs() if d.get("form") == "pregnancy")
    assert len(reports) == 6 and pregnancy_reports > 0
    results = live.medic.bulk_docs([form, *reports, *live.absent_forms])
    assert all(result.get("ok") for result in results), results

    def arrived() -> bool:
        nodes = live.nodes()
        return bool(
            live.count("formview_pnc_danger_sign_follow_up_mother") == len(reports)
            and live.count("formview_pregnancy") == pregnancy_reports
            and live.materialized("useviews/useview_pregnancy")
            and {"unique_key", "parity"}
            <= {
                c["name"]
                for c in nodes.get("formviews/formview_pnc_danger_sign_follow_up_mother", {})
                .get("assetChecksOrError", {})
                .get("checks", [])
            }
            and superset_dataset(admin, live, "formview_pnc_danger_sign_follow_up_mother")
        )

    seconds = poll(arrived, live, WITHIN, "new forms built, checked and published")
    print(f"new forms reached Superset in {seconds:.0f}s")
    assert live.count("useview_pregnancy") == pregnancy_reports
    live.dev.wait_idle(timeout=300)
    assert live.failed_runs() == []


def test_a_new_form_version_adds_its_column(live: Live, admin: SupersetClient, shared_dir: Path) -> None:
    form = live.medic.get_doc("form:pnc_danger_sign_follow_up_mother", attachments="true")
    xml = xform_of(form)
    xml = xml.replace("</inputs>", "</inputs>\n          <extra_cause/>", 1)
    xml = re.sub(r"(\s*<bind )", r'\n      <bind nodeset="/data/extra_cause" type="string"/>\1', xml, count=1)
    column = next(
        c.name for c in formview_columns(parse_xform(xml)) if c.json_path == ("fields", "extra_cause")
    )
    form["_attachments"] = {
        "xml": {"content_type": "application/xml", "data": base64.b64encode(xml.encode()).decode()}
    }
    report = {**new_form_reports(shared_dir)[0], "_id": f"pnc-mother-{uuid.uuid4().hex[:8]}"}
    report["fields"] = {**report["fields"], "extra_cause": "flood"}
    results = live.medic.bulk_docs([form, report])
    assert all(result.get("ok") for result in results), results

    def column_filled() -> bool:
        try:
            return live.query(
                f'SELECT "{column}" FROM formview_pnc_danger_sign_follow_up_mother WHERE uuid = %s',
                report["_id"],
            ) == [("flood",)]
        except psycopg.errors.UndefinedColumn:
            return False

    poll(column_filled, live, WITHIN, f"column {column} of the new form version")
    poll(
        lambda: (
            column
            in {
                c["column_name"]
                for c in admin.get(
                    f"/api/v1/dataset/{superset_dataset(admin, live, 'formview_pnc_danger_sign_follow_up_mother')['id']}"
                )["result"]["columns"]
            }
        ),
        live,
        WITHIN,
        "the new column in the Superset dataset",
    )
    live.dev.wait_idle(timeout=300)
    assert live.failed_runs() == []
