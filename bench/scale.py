"""Scale benchmark (issue 14): one generated deployment, from CouchDB to Superset's charts.

For a deployment of about `--docs` generated CHT docs (the demo generator: contacts, reports of
every form, tasks, targets, telemetry), in one run, on fresh local servers (pouchdb-server,
embedded PostgreSQL 18, Superset from .superset-venv, all on free ports, stopped by PID):
  1. initial sync through the real raw assets (`dagster materialize` of group raw, in a child
     process whose peak RSS is read), in docs/s, beside a plain read of the same server's
     `_changes` (bench/replication.py's raw_read, before and after the sync; the mean is used);
  2. full build of every view layer (bench/views.py's run): each layer's time (its steps' own
     time), wall time, and the warehouse's size on disk (pg_database_size and per schema);
  3. 1 % of the docs of every database but `_users` edited or deleted (bench/views.py's touch),
     then sync + refresh: the steps' own time and the wall time, both as ratios of (2); then with
     nothing changed (the fixed cost), and one report edited: the wall time a user waits after
     a single change, in a run of every view (a manual materialization) and as `dagster dev`
     takes it (the update_seq sensor's tick and its run of the replica and of the views the
     report reaches); Dagster's instance is `dagster dev`'s (SQLite, connections kept:
     cht_assets/instance_storage.py); then 1 %, nothing and one report again on other instance
     storage, side by side: Dagster's own SQLite storage (a connection per event), PostgreSQL
     as a deployment runs it (deploy/dagster.yaml: connections kept) and Dagster's own
     PostgreSQL storage (a connection per event), each in a database of its own;
  4. every chart of every shipped dashboard (superset/dashboards/*.yaml, provisioned by the real
     Superset assets) through Superset's chart-data API, as the admin and as two managers that
     row-level security confines to one health center and to one district hospital: median and
     p95 per chart, cold (`POST /api/v1/chart/data` with the chart's saved query context and
     `force: true`: Superset's cache bypassed, the query runs in PostgreSQL) and warm
     (`GET /api/v1/chart/{id}/data/`, as a dashboard asks; Superset ships with its data cache
     off (NullCache), so warm means PostgreSQL's buffers warm, and `cached` says how many
     answers came from a cache). Goal: p95 <= 1 s for a manager, <= 2 s for the admin.
Two sizes (`--docs 200000 1000000`) run one after the other on fresh servers, then print each
figure's growth (last / first). Prints progress while it runs and the tables at the end;
asserts nothing.

    .venv/bin/python bench/scale.py [--docs 1000000] [--share 0.01] [--repeats 5] [--no-superset]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import importlib
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg
import yaml
from replication import raw_read
from views import SEED, Timed, households_for, run, timed, touch

from cht_assets.bi.client import SupersetAPIError, SupersetClient
from cht_assets.bi.dashboard_specs import load_dashboards
from cht_assets.couch.client import CouchClient
from cht_assets.defs.raw import build_raw_assets
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.defs.sensors import UPDATE_SEQ_SENSOR, seq_text
from cht_assets.defs.superset import SupersetResource, build_superset_assets, published_datasets
from cht_assets.defs.views import build_view_assets
from cht_assets.demo.generator import DATABASES
from cht_assets.demo.loader import Progress, couch_clients, database_name, load_deployment
from cht_assets.servers.couchdb import start_pouchdb_server
from cht_assets.servers.dagster_dev import DAGSTER_YAML, INSTANCE_SETTINGS
from cht_assets.servers.postgres import ensure_database, start_embedded_postgres
from cht_assets.servers.superset import DEFAULT_VENV, admin_credentials, start_superset
from cht_assets.settings import load_settings

PREFIX = "medic"
TOUCHED = [suffix for suffix in DATABASES if not suffix.startswith("_")]  # `_users` validates names
MANAGERS = {  # who -> (level of their one place, env var holding their password)
    "hc manager": ("health_center", "BENCH_SCALE_PW_HC"),
    "dh manager": ("district_hospital", "BENCH_SCALE_PW_DH"),
}
GOALS = {"admin": 2.0, "hc manager": 1.0, "dh manager": 1.0}  # p95 seconds (issue 14)
CHART_TIMEOUT = 60.0  # seconds, as in issue 14's measurement
DEPLOY_INSTANCE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"


def say(message: str) -> None:
    print(f"[scale {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def eta(done: float, total: float, elapsed: float) -> str:
    if done <= 0 or elapsed <= 0 or total <= done:
        return "ETA -"
    return f"ETA {(total - done) * elapsed / done:.0f}s"


@contextlib.contextmanager
def quiet(log: Path) -> Iterator[None]:
    """Dagster's run logs (stderr, DEBUG) into `log` instead of the terminal; its tail on failure."""
    with open(log, "a") as out:
        try:
            with contextlib.redirect_stderr(out):
                yield
        except BaseException:
            out.flush()
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise


@contextlib.contextmanager
def heartbeat(what: str, every: float = 30.0) -> Iterator[None]:
    """Say that `what` still runs, every `every` seconds (a step that reports nothing itself)."""
    stop, started = threading.Event(), time.monotonic()

    def beat() -> None:
        while not stop.wait(every):
            say(f"  {what}: {time.monotonic() - started:.0f}s so far")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# --- 1. initial sync -------------------------------------------------------------------------------


def child_sync(args: argparse.Namespace) -> None:
    """In a process of its own (its peak RSS is the sync's): materialize the raw assets."""
    resources = {
        "couchdb": CouchDBResource(url=args.couch_url),
        "postgres": PostgresResource(url=args.pg_url),
    }
    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME: the parent's instance
        sync = run(build_raw_assets(), resources, instance)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": sync.wall, "work": sync.work, "events": sync.events, "peak_rss_mb": peak_mb}))


def raw_rows(pg_url: str) -> int:
    """Rows written into raw.couchdb_docs so far (statistics: no scan of the table)."""
    with contextlib.suppress(psycopg.Error), psycopg.connect(pg_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables "
            "WHERE schemaname = 'raw' AND relname = 'couchdb_docs'"
        ).fetchone()
        return int(row[0])
    return 0


def measure_sync(couch_url: str, pg_url: str, home: Path, changes: int) -> dict:
    """The child's figures; meanwhile progress from PostgreSQL's statistics."""
    command = [sys.executable, __file__, "--child-sync", "--couch-url", couch_url, "--pg-url", pg_url]
    log = home / "sync.log"
    with open(log, "wb") as err:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=os.environ)
        started = time.monotonic()
        reader = concurrent.futures.ThreadPoolExecutor(1).submit(child.stdout.read)
        while child.poll() is None:
            time.sleep(10)
            if child.poll() is None:
                done, elapsed = raw_rows(pg_url), time.monotonic() - started
                rate = done / elapsed if elapsed else 0
                say(f"  sync: {done:,} / {changes:,} docs, {rate:,.0f} docs/s, {eta(done, changes, elapsed)}")
        out = reader.result().decode()
    if child.returncode != 0:
        raise SystemExit(f"the sync failed (exit {child.returncode}):\n{log.read_text()[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def read_all(couch_url: str, dbs: list[str], batch_size: int) -> tuple[int, float]:
    changes = seconds = 0.0
    for db in dbs:
        got, took = raw_read(CouchClient(couch_url, db), batch_size)
        changes, seconds = changes + got, seconds + took
    return int(changes), seconds


# --- 2. warehouse size -----------------------------------------------------------------------------


def warehouse_size(pg_url: str) -> tuple[int, dict[str, int]]:
    """Bytes on disk: the whole database, and each schema's tables and materialized views with
    their indexes and TOAST."""
    with psycopg.connect(pg_url) as conn:
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        rows = conn.execute(
            "SELECT n.nspname, sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return total, dict(rows)


# --- 4. Superset -----------------------------------------------------------------------------------


def pick_places(pg_url: str) -> dict[str, tuple[str, str]]:
    """A district hospital and one of its health centers (live, first by name): uuid and name."""
    contacts = (
        "SELECT _id, doc->>'name', doc->'parent'->>'_id' FROM raw.couchdb_docs WHERE NOT _deleted "
        "AND coalesce(doc->>'contact_type', doc->>'type') = %s ORDER BY doc->>'name', _id"
    )
    with psycopg.connect(pg_url) as conn:
        hospitals = conn.execute(contacts, ("district_hospital",)).fetchall()
        centers = conn.execute(contacts, ("health_center",)).fetchall()
    hospital = hospitals[0]
    center = next((c for c in centers if c[2] == hospital[0]), centers[0])
    return {"district_hospital": hospital[:2], "health_center": center[:2]}


def access_file(path: Path, places: dict[str, tuple[str, str]], passwords: dict[str, str]) -> Path:
    """superset/access.yaml's layout with the bench's two managers, their place given by uuid."""
    managers = []
    for who, (level, password_env) in MANAGERS.items():
        managers.append(
            {
                "user": f"bench_{who.split()[0]}_manager",
                "first_name": "Bench",
                "last_name": who,
                "password_env": password_env,
                "places": [{"uuid": places[level][0]}],
            }
        )
        os.environ[password_env] = passwords[who]
    access = {
        "levels": ["district_hospital", "health_center", "clinic"],
        "postgres": {"view_schemas": ["public"], "view_prefixes": ["contactview_", "formview_", "useview_"]},
        "managers": managers,
    }
    path.write_text(yaml.safe_dump(access, sort_keys=False))
    return path


@dataclass
class Chart:
    slug: str
    key: str
    id: int
    query_context: dict
    times: dict[tuple[str, str], list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: dict[tuple[str, str], str] = field(default_factory=dict)
    cached: collections.Counter = field(default_factory=collections.Counter)
    answers: dict[str, str] = field(default_factory=dict)  # user -> their first warm answer's data

    @property
    def name(self) -> str:
        return f"{self.slug}/{self.key}"


def shipped_charts(admin: SupersetClient) -> list[Chart]:
    """Every chart of every shipped dashboard as provisioned: its id and saved query context."""
    charts = []
    for spec in load_dashboards():
        dashboard = admin.get(f"/api/v1/dashboard/{spec.slug}")["result"]
        ids = {
            c["slice_name"]: c["id"]
            for c in admin.get(f"/api/v1/dashboard/{dashboard['id']}/charts")["result"]
        }
        for chart in spec.charts:
            saved = admin.get(f"/api/v1/chart/{ids[chart.title]}")["result"]
            context = json.loads(saved["query_context"])
            context["datasource"] = {"id": saved["datasource_id"], "type": saved["datasource_type"]}
            charts.append(Chart(spec.slug, chart.key, ids[chart.title], context))
    return charts


def ask(client: SupersetClient, chart: Chart, mode: str) -> tuple[float, bool, str]:
    """One chart's data: seconds, whether Superset answered from its cache, and the data."""
    started = time.monotonic()
    if mode == "cold":
        body = client.post("/api/v1/chart/data", {**chart.query_context, "force": True})
    else:
        body = client.get(f"/api/v1/chart/{chart.id}/data/")
    took = time.monotonic() - started
    results = body.get("result", [])
    data = json.dumps([result.get("data") for result in results], sort_keys=True, default=str)
    return took, any(result.get("is_cached") for result in results), data


def measure_charts(url: str, users: dict[str, tuple[str, str]], charts: list[Chart], repeats: int) -> None:
    """Each user, each mode (cold rounds first), `repeats` rounds over every chart. A chart that
    fails or times out is not asked again by that user in that mode."""
    total = len(users) * 2 * repeats * len(charts)
    done, started = 0, time.monotonic()
    for who, (username, password) in users.items():
        with SupersetClient(url, username, password, timeout=CHART_TIMEOUT) as client:
            client.login()
            for mode in ("cold", "warm"):
                for round_ in range(1, repeats + 1):
                    for chart in charts:
                        done += 1
                        if (who, mode) in chart.errors:
                            continue
                        try:
                            took, cached, data = ask(client, chart, mode)
                        except SupersetAPIError as error:
                            chart.errors[(who, mode)] = (
                                "timeout" if error.status == 0 else f"HTTP {error.status}"
                            )
                            say(f"  {who} {mode} {chart.name}: {error}"[:300])
                            continue
                        chart.times[(who, mode)].append(took)
                        chart.cached[(who, mode)] += cached
                        chart.answers.setdefault(who, data)
                    elapsed = time.monotonic() - started
                    say(
                        f"  charts: {who} {mode} round {round_}/{repeats} done ({done}/{total} requests, "
                        f"{eta(done, total, elapsed)})"
                    )


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


# --- one size --------------------------------------------------------------------------------------


@dataclass
class Result:
    docs: int
    figures: dict[str, float] = field(default_factory=dict)  # label -> value, in print order
    units: dict[str, str] = field(default_factory=dict)
    charts: list[Chart] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, label: str, value: float, unit: str) -> None:
        self.figures[label] = value
        self.units[label] = unit


def sync_and_refresh(
    what: str, views: list, resources: dict, instance: dg.DagsterInstance, log: Path
) -> tuple[Timed, Timed]:
    """The raw assets' run, then the views' run, as a user's change goes through them."""
    with heartbeat(f"{what.strip()}: sync + refresh"), quiet(log):
        sync = run(build_raw_assets(), resources, instance)
        refresh = run(views, resources, instance)
    say(f"{what}: sync {sync.wall:.1f}s + refresh {refresh.wall:.1f}s")
    return sync, refresh


def add_sync_and_refresh(result: Result, what: str, sync: Timed, refresh: Timed, goal: str = "") -> None:
    result.add(f"{what}: sync + refresh wall{goal}", sync.wall + refresh.wall, "s")
    result.add(f"  {what}: refresh work (steps' own time)", refresh.work, "s")
    result.add(f"  {what}: Dagster events stored", sync.events + refresh.events, "events")


def seqs_now(couch_url: str, dbs: list[str]) -> dict[str, str]:
    return {db: seq_text(CouchClient(couch_url, db).db_info()["update_seq"]) for db in dbs}


def sensor_runs(seen: dict[str, str], resources: dict, instance: dg.DagsterInstance, log: Path) -> Timed:
    """What `dagster dev` does after a change: the code location's update_seq sensor, its cursor
    the seqs `seen` before the change, requests a run of the replica and of the views the
    changed docs reach; the runs executed as the daemon would. Wall time from the tick on."""
    sys.modules.pop("cht_assets.definitions", None)
    defs = importlib.import_module("cht_assets.definitions").defs
    job = defs.resolve_implicit_global_asset_job_def()
    started = time.monotonic()
    with dg.build_sensor_context(
        instance=instance, definitions=defs, cursor=json.dumps(seen), resources=resources
    ) as context:
        requests = defs.resolve_sensor_def(UPDATE_SEQ_SENSOR).evaluate_tick(context).run_requests
    with quiet(log):
        results = [
            job.execute_in_process(instance=instance, asset_selection=r.asset_selection, tags=r.tags)
            for r in requests
        ]
    return timed(results, time.monotonic() - started, instance)


def one_report_edited(medic: CouchClient, pg_url: str) -> None:
    """Edit the newest live report in CouchDB (a field added)."""
    with psycopg.connect(pg_url) as conn:
        (doc_id,) = conn.execute(
            "SELECT _id FROM raw.couchdb_docs WHERE doc ->> 'type' = 'data_record' AND NOT _deleted"
            " ORDER BY change_seq DESC LIMIT 1"
        ).fetchone()
    doc = medic.get_doc(doc_id)
    medic.bulk_docs([{**doc, "bench_edited_once": True}])


@dataclass
class Refreshes:
    """Section 3: refreshes after changes made in CouchDB, as ratios of the full build."""

    couch_url: str
    pg_url: str
    dbs: list[str]
    resources: dict
    views: list
    full: Timed
    share: float
    log: Path

    def medic(self) -> CouchClient:
        return CouchClient(self.couch_url, database_name(PREFIX, "medic"))

    def measure(self, result: Result, instance: dg.DagsterInstance, on: str, seed: int) -> None:
        """1 % changed (the docs `seed` picks), nothing changed, and one report through the
        sensor's run, on `instance`."""
        edited = deleted = 0
        for suffix in TOUCHED:
            client = CouchClient(self.couch_url, database_name(PREFIX, suffix))
            e, d = touch(client, self.share, random.Random(seed))
            edited, deleted = edited + e, deleted + d
        say(f"{on}edited {edited:,} and deleted {deleted:,} docs in CouchDB; sync + refresh")
        sync, refresh = sync_and_refresh(f"  {on}1 % changed", self.views, self.resources, instance, self.log)
        say(f"  slowest objects (own time): {refresh.slowest()}")
        result.add(f"{on}{self.share:.0%} changed: docs edited + deleted", edited + deleted, "docs")
        result.add(f"  {on}sync wall", sync.wall, "s")
        result.add(f"  {on}refresh wall", refresh.wall, "s")
        work = (sync.work + refresh.work) / self.full.work
        result.add(f"  {on}work (steps' own time) / full build's", work, "ratio")
        wall = (sync.wall + refresh.wall) / self.full.wall
        result.add(f"  {on}wall / full build's (goal <= 0.05)", wall, "ratio")
        result.add(f"  {on}Dagster events stored", sync.events + refresh.events, "events")
        # nothing changed: the fixed cost of a sync + refresh (Dagster's, and ours)
        sync, refresh = sync_and_refresh(
            f"{on}nothing changed", self.views, self.resources, instance, self.log
        )
        add_sync_and_refresh(result, f"{on}nothing changed", sync, refresh)
        # one report edited, as `dagster dev` takes it: the update_seq sensor's tick and its run
        # of the replica and of the views the report reaches
        seen = seqs_now(self.couch_url, self.dbs)
        one_report_edited(self.medic(), self.pg_url)
        reached = sensor_runs(seen, self.resources, instance, self.log)
        say(
            f"{on}one report edited, the sensor's run: {reached.wall:.1f}s: {reached.slowest(len(reached.objects))}"
        )
        result.add(f"{on}1 report edited, sensor's run: sync + refresh wall (goal < 5 s)", reached.wall, "s")
        result.add(
            f"  {on}1 report edited, sensor's run: view objects refreshed", len(reached.objects), "objects"
        )
        result.add(f"  {on}1 report edited, sensor's run: steps' own time", reached.work, "s")
        result.add(f"  {on}1 report edited, sensor's run: Dagster events stored", reached.events, "events")

    def one_report_in_every_view(self, result: Result, instance: dg.DagsterInstance) -> None:
        """One report edited, then a run of every view (a manual materialization)."""
        one_report_edited(self.medic(), self.pg_url)
        sync, refresh = sync_and_refresh("one report edited", self.views, self.resources, instance, self.log)
        add_sync_and_refresh(result, "1 report edited, every view", sync, refresh)


def other_instances() -> dict[str, str]:
    """dagster.yaml of the instances measured beside `dagster dev`'s, by label: Dagster's own
    SQLite storage (a connection per event), deploy/dagster.yaml (PostgreSQL, connections kept:
    a deployment's) and Dagster's own PostgreSQL storage (a connection per event)."""
    deploy = yaml.safe_load(DEPLOY_INSTANCE.read_text())
    stock_postgres = {**deploy, "storage": {"postgres": deploy["storage"]["custom"]["config"]}}
    return {
        "Dagster's SQLite storage: ": INSTANCE_SETTINGS,
        "PostgreSQL storage (deploy/): ": DEPLOY_INSTANCE.read_text(),
        "Dagster's PostgreSQL storage: ": yaml.safe_dump(stock_postgres),
    }


def with_superset(args: argparse.Namespace) -> bool:
    if args.no_superset:
        return False
    if not (DEFAULT_VENV / "bin" / "gunicorn").exists():
        say(f"no Superset venv at {DEFAULT_VENV} (`make install`): charts not measured")
        return False
    return True


def measure(target: int, args: argparse.Namespace) -> Result:
    started_all = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    stops: list[Callable[[], None]] = []
    pool = concurrent.futures.ThreadPoolExecutor(1)
    result = Result(target)
    saved_env = dict(os.environ)
    superset_started = None
    try:
        pg = start_embedded_postgres(work / "pg")
        stops.append(pg.stop)
        couch = start_pouchdb_server(work / "couch")
        stops.append(couch.stop)
        ensure_database(pg.url(), "bench")
        pg_url = pg.url("bench")
        home = work / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(DAGSTER_YAML)  # `dagster dev`'s instance
        dbs = [database_name(PREFIX, suffix) for suffix in DATABASES]
        os.environ.update(
            COUCHDB_URL=couch.url, POSTGRES_URL=pg_url, COUCHDB_DBS=",".join(dbs), DAGSTER_HOME=str(home)
        )
        say(
            f"size {target:,} docs: pouchdb-server {couch.url}, PostgreSQL 127.0.0.1:{pg.port}, work in {work}"
        )
        if with_superset(args):  # its bootstrap (~30 s) overlaps the load, which is not measured
            ensure_database(pg.url(), "superset_metadata")
            say("starting Superset in the background")
            superset_started = pool.submit(start_superset, work / "superset", pg.url("superset_metadata"))

        households = households_for(target)
        last = [0.0]

        def progress(p: Progress) -> None:
            if time.monotonic() - last[0] >= 10:
                last[0] = time.monotonic()
                eta_s = f"ETA {p.eta_s:.0f}s" if p.eta_s is not None else "ETA -"
                say(f"  load: {p.docs:,} / ~{p.estimated_total or 0:,} docs, {p.rate:,.0f} docs/s, {eta_s}")

        say(f"generating and loading {households:,} households")
        started = time.monotonic()
        report = load_deployment(
            couch_clients(couch.url), (SEED, households), db_prefix=PREFIX, progress=progress
        )
        load_s = time.monotonic() - started
        infos = {db: CouchClient(couch.url, db).db_info() for db in dbs}
        docs = sum(i["doc_count"] for i in infos.values())
        changes = sum(i["doc_count"] + i.get("doc_del_count", 0) for i in infos.values())
        result.docs = docs
        say(
            f"loaded {report.written:,} docs in {load_s:.0f}s: "
            + ", ".join(f"{db} {i['doc_count']:,}" for db, i in infos.items())
        )
        result.add("docs in CouchDB", docs, "docs")
        result.add("load average (1 min) before the sync, not a goal", os.getloadavg()[0], "")
        result.add("load (generator + _bulk_docs, not a goal)", load_s, "s")

        # 1. initial sync, beside the raw read
        batch = load_settings().couchdb_batch_size
        say(f"raw _changes read of every database (batch {batch})")
        read1 = read_all(couch.url, dbs, batch)
        say(
            f"  raw read {read1[0]:,} changes at {read1[0] / read1[1]:,.0f} docs/s; now the sync (raw assets)"
        )
        synced = measure_sync(couch.url, pg_url, home, changes)
        read2 = read_all(couch.url, dbs, batch)
        raw_rate = (read1[0] / read1[1] + read2[0] / read2[1]) / 2
        sync_rate = changes / synced["wall"]
        say(
            f"  sync {synced['wall']:.1f}s = {sync_rate:,.0f} docs/s (raw read {raw_rate:,.0f} docs/s), "
            f"peak RSS {synced['peak_rss_mb']:.0f} MB"
        )
        result.add("raw _changes read", raw_rate, "docs/s")
        result.add("initial sync (Dagster, raw assets)", sync_rate, "docs/s")
        result.add("sync / raw read", sync_rate / raw_rate, "ratio")
        result.add("initial sync wall", synced["wall"], "s")
        result.add("initial sync peak RSS", synced["peak_rss_mb"], "MB")

        resources = {"couchdb": CouchDBResource(url=couch.url), "postgres": PostgresResource(url=pg_url)}
        dagster_log = work / "dagster.log"
        with dg.DagsterInstance.get() as instance:
            # 2. full build
            views = build_view_assets()  # the forms are synced: formviews included
            say(f"full build of {sum(len(asset.keys) for asset in views)} view-layer objects")
            with heartbeat("full build"), quiet(dagster_log):
                full = run(views, resources, instance)
            say(
                f"  full build {full.wall:.1f}s: "
                + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(full.layers.items()))
            )
            result.add("full build wall", full.wall, "s")
            result.add("full build work (steps' own time)", full.work, "s")
            result.add("full build: Dagster events stored", full.events, "events")
            for layer, seconds in sorted(full.layers.items()):
                result.add(f"  layer {layer}", seconds, "s")
            total, schemas = warehouse_size(pg_url)
            result.add("warehouse size (pg_database_size)", total / 2**20, "MB")
            for schema, size in schemas.items():
                result.add(f"  schema {schema}", size / 2**20, "MB")

            # 3. 1 % changed, nothing changed, one report edited; Dagster on SQLite (`dagster dev`)
            refreshes = Refreshes(couch.url, pg_url, dbs, resources, views, full, args.share, dagster_log)
            refreshes.measure(result, instance, "", seed=1)
            refreshes.one_report_in_every_view(result, instance)
            # 3c. the same on other instance storage, side by side
            os.environ.update(
                DAGSTER_PG_HOST="127.0.0.1", DAGSTER_PG_PORT=str(pg.port), DAGSTER_PG_USER="postgres",
                DAGSTER_PG_PASSWORD="", DAGSTER_PG_DB="dagster",
            )  # fmt: skip
            for seed, (on, config) in enumerate(other_instances().items(), start=2):
                other_home = work / f"dagster_home_{seed}"
                other_home.mkdir()
                (other_home / "dagster.yaml").write_text(config)
                os.environ["DAGSTER_PG_DB"] = f"dagster_{seed}"
                ensure_database(pg.url(), os.environ["DAGSTER_PG_DB"])
                with dg.DagsterInstance.from_config(str(other_home)) as other_instance:
                    refreshes.measure(result, other_instance, on, seed=seed)

            # 4. charts
            if superset_started is not None:
                superset = superset_started.result()
                say(f"Superset on {superset.url}; provisioning datasets, dashboards and two managers")
                places = pick_places(pg_url)
                passwords = {who: f"bench-{who.split()[0]}-{os.getpid()}" for who in MANAGERS}
                access = access_file(work / "access.yaml", places, passwords)
                assets = build_superset_assets(published_datasets(views), access_path=access)
                superset_resources = {
                    "superset": SupersetResource(url=superset.url),
                    "postgres": PostgresResource(url=pg_url),
                }
                started = time.monotonic()
                with heartbeat("Superset provisioning"), quiet(dagster_log):
                    provisioned = dg.materialize(assets, resources=superset_resources, instance=instance)
                if not provisioned.success:
                    raise SystemExit("provisioning Superset failed")
                result.add("Superset provisioning (not a goal)", time.monotonic() - started, "s")
                user, password = admin_credentials()
                with SupersetClient(superset.url, user, password) as admin:
                    charts = shipped_charts(admin)
                users = {"admin": (user, password)}
                for who, (level, _) in MANAGERS.items():
                    users[who] = (f"bench_{who.split()[0]}_manager", passwords[who])
                    say(f"  {who}: {level} {places[level][1]!r} ({places[level][0]})")
                result.users = list(users)
                say(f"{len(charts)} charts x {len(users)} users x (cold, warm) x {args.repeats} rounds")
                measure_charts(superset.url, users, charts, args.repeats)
                result.charts = charts
    finally:
        if superset_started is not None:  # first: its metadata lives in our PostgreSQL
            with contextlib.suppress(Exception):
                superset_started.result().stop()
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()
        pool.shutdown(wait=False, cancel_futures=True)
        os.environ.clear()
        os.environ.update(saved_env)
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.monotonic() - started_all
    return result


# --- report ----------------------------------------------------------------------------------------


def number(value: float, unit: str) -> str:
    if unit in ("ratio",):
        return f"{value:.3f}"
    if unit in ("docs", "events", "docs/s") or value >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def growth(first: float, last: float) -> str:
    return f"{last / first:.2f}" if first else "-"


def print_figures(results: list[Result]) -> None:
    sizes = [f"{r.docs:,} docs" for r in results]
    head = f"{'figure':<52} {'unit':>7} " + " ".join(f"{s:>15}" for s in sizes)
    if len(results) > 1:
        head += f" {'growth':>8}"
    print("\n" + head)
    print("-" * len(head))
    for label, unit in results[-1].units.items():
        values = [r.figures.get(label) for r in results]
        line = f"{label:<52} {unit:>7} " + " ".join(
            f"{number(v, unit) if v is not None else '-':>15}" for v in values
        )
        if len(results) > 1 and None not in values:
            line += f" {growth(values[0], values[-1]):>8}"
        print(line)


def chart_cell(chart: Chart, who: str, mode: str) -> str:
    if (who, mode) in chart.errors and not chart.times[(who, mode)]:
        return chart.errors[(who, mode)]
    times = chart.times[(who, mode)]
    if not times:
        return "-"
    flag = "!" if p95(times) > GOALS[who] else ""
    return f"{statistics.median(times):.2f}/{p95(times):.2f}{flag}"


def print_charts(result: Result, repeats: int) -> None:
    if not result.charts:
        return
    columns = [(who, mode) for who in result.users for mode in ("cold", "warm")]
    print(
        f"\nchart-data API, {result.docs:,} docs: median/p95 seconds over {repeats} requests "
        f"('!' = p95 over the goal: admin 2 s, manager 1 s)"
    )
    head = f"{'chart':<44} " + " ".join(f"{who + ' ' + mode:>15}" for who, mode in columns)
    print(head)
    print("-" * len(head))
    for chart in result.charts:
        print(f"{chart.name:<44} " + " ".join(f"{chart_cell(chart, who, mode):>15}" for who, mode in columns))
    for who, mode in columns:
        p95s = [p95(c.times[(who, mode)]) for c in result.charts if c.times[(who, mode)]]
        failed = sum(1 for c in result.charts if (who, mode) in c.errors)
        cached = sum(c.cached[(who, mode)] for c in result.charts)
        over = sum(1 for value in p95s if value > GOALS[who]) + failed  # a failure misses the goal too
        worst = "- (a chart failed)" if failed else f"{max(p95s, default=0):.2f}s"
        print(
            f"{who + ' ' + mode:<16} worst p95 {worst}; {over} of {len(result.charts)} charts over "
            f"{GOALS[who]:.0f}s or failed ({failed} failed); {cached} answers from Superset's cache"
        )
    for who in result.users[1:]:  # RLS at work: a manager's answers differ from the admin's
        differ = sum(
            1 for c in result.charts if who in c.answers and c.answers[who] != c.answers.get("admin")
        )
        print(f"{who}: {differ} of {len(result.charts)} charts answer other than for the admin (RLS)")


def print_chart_growth(results: list[Result]) -> None:
    first, last = results[0], results[-1]
    if len(results) < 2 or not first.charts or not last.charts:
        return
    columns = [(who, mode) for who in last.users for mode in ("cold", "warm")]
    before = {c.name: c for c in first.charts}
    print(f"\nchart growth, p95 {last.docs:,} / {first.docs:,} docs")
    head = f"{'chart':<44} " + " ".join(f"{who + ' ' + mode:>15}" for who, mode in columns)
    print(head)
    print("-" * len(head))
    for chart in last.charts:
        old = before.get(chart.name)
        cells = []
        for key in columns:
            if old is None or not old.times[key] or not chart.times[key]:
                cells.append("-")
            else:
                cells.append(growth(p95(old.times[key]), p95(chart.times[key])))
        print(f"{chart.name:<44} " + " ".join(f"{cell:>15}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=5, help="requests per chart, user and mode")
    parser.add_argument("--no-superset", action="store_true", help="skip the charts")
    parser.add_argument("--child-sync", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--couch-url", help=argparse.SUPPRESS)
    parser.add_argument("--pg-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_sync:
        child_sync(args)
        return
    started = time.monotonic()
    results = [measure(target, args) for target in args.docs]
    print(
        f"\nbench/scale.py, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, "
        f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
        + "; ".join(f"{r.docs:,} docs took {r.seconds / 60:.1f} min" for r in results)
    )
    print_figures(results)
    for result in results:
        print_charts(result, args.repeats)
    print_chart_growth(results)
    say(f"done in {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
