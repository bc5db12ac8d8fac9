"""End-to-end latency under `dagster dev`: a report written into CouchDB, until its row is in the
use view (`useview_chw_activity` counts reports per CHW, week and form; its rows come from
`form_metadata`). Target (issue 14): median <= 20 s, worst <= 40 s.

Runs the deployment as shipped: the update_seq sensor watches CouchDB and launches the
replication with the views that follow it in the same run, the automation sensor the rest, with
the default intervals (COUCHDB_POLL_SECONDS=15, AUTOMATION_INTERVAL_SECONDS=15) unless set. A fresh pouchdb-server and PostgreSQL (POSTGRES_URL
as an admin URL when set, else embedded PostgreSQL 18) with a generated deployment; Superset is
not started (its assets cannot run and are not measured). Measured twice, side by side, with
the instance `dagster dev` gets (SQLite, connections kept: cht_assets/instance_storage.py) and
with Dagster's own SQLite storage, each a `dagster dev` of its own on a new DAGSTER_HOME (its
first build included, unmeasured). Prints figures; asserts nothing.

    .venv/bin/python bench/latency.py [--households 60] [--trials 5]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from cht_assets.couch.client import CouchClient
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, database_name, load_deployment
from cht_assets.replica.replicate import replicate_database
from cht_assets.servers.couchdb import start_pouchdb_server
from cht_assets.servers.dagster_dev import DAGSTER_YAML, INSTANCE_SETTINGS, start_dagster_dev
from cht_assets.servers.postgres import start_embedded_postgres
from cht_assets.servers.process import free_port

SUFFIXES = ("medic", "medic-sentinel", "medic-users-meta", "medic-logs")


def say(message: str) -> None:
    print(f"[latency] {message}", flush=True)


def query(pg_url: str, text: str, *params: object) -> list[tuple]:
    with psycopg.connect(pg_url) as conn:
        try:
            return conn.execute(text, params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def reports_of(pg_url: str, chw: str) -> int:
    rows = query(
        pg_url, "SELECT coalesce(sum(reports), 0)::int FROM useview_chw_activity WHERE chw_uuid = %s", chw
    )
    return rows[0][0] if rows else -1


def in_raw(pg_url: str, db: str, doc_id: str) -> bool:
    return bool(query(pg_url, "SELECT 1 FROM raw.couchdb_docs WHERE source = %s AND _id = %s", db, doc_id))


def trial(pg_url: str, client: CouchClient, chw: dict, timeout: float) -> tuple[float, float] | None:
    """Seconds until the report is in raw, and until the use view counts it."""
    before = reports_of(pg_url, chw["_id"])
    report = f"latency-{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    client.bulk_docs(
        [
            {
                "_id": report,
                "type": "data_record",
                "form": "assessment",
                "content_type": "xml",
                "contact": {"_id": chw["_id"], "parent": chw.get("parent")},
                "reported_date": int(time.time() * 1000),
                "fields": {},
            }
        ]
    )
    to_raw = None
    while time.monotonic() - started < timeout:
        if to_raw is None and in_raw(pg_url, client.db, report):
            to_raw = time.monotonic() - started
        if reports_of(pg_url, chw["_id"]) > before:
            return (to_raw if to_raw is not None else time.monotonic() - started), time.monotonic() - started
        time.sleep(0.25)
    return None


def measure(
    label: str,
    home: Path,
    env: dict[str, str],
    port: int,
    pg_url: str,
    client: CouchClient,
    args: argparse.Namespace,
) -> None:
    """Trials under a `dagster dev` on `home`'s instance, started for them and stopped after."""
    say(f"{label}: starting dagster dev")
    started = time.monotonic()
    dev = start_dagster_dev(home, env, port=port, compute_logs=True)
    try:
        say(f"dagster dev up in {time.monotonic() - started:.0f}s on {dev.url}; waiting for the first build")
        dev.wait(lambda: reports_of(pg_url, "") >= 0, 300, "useview_chw_activity built")
        dev.wait_idle(300)
        say(f"first build done {time.monotonic() - started:.0f}s after start")
        chw_id = query(
            pg_url, "SELECT chw_uuid FROM useview_chw_activity WHERE chw_uuid IS NOT NULL LIMIT 1"
        )[0][0]
        chw = client.get_doc(chw_id)
        results = []
        for number in range(1, args.trials + 1):
            time.sleep(random.uniform(0, 15))  # sample every phase of the sensors' intervals
            measured = trial(pg_url, client, chw, args.timeout)
            if measured is None:
                say(f"trial {number}: not in the view within {args.timeout:.0f}s")
                continue
            results.append(measured)
            say(
                f"trial {number}: in raw after {measured[0]:.1f}s, in useview_chw_activity after {measured[1]:.1f}s"
            )
            dev.wait_idle(300)
    finally:
        dev.stop()
    if results:
        ends = [end for _, end in results]
        say(
            f"{label}: CouchDB -> useview_chw_activity over {len(ends)} trials: median "
            f"{statistics.median(ends):.1f}s, max {max(ends):.1f}s, min {min(ends):.1f}s (target: median <= 20s, "
            f"max <= 40s); CouchDB -> raw median {statistics.median(r for r, _ in results):.1f}s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=60)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args(argv)
    stops = []
    work = Path(tempfile.mkdtemp(prefix="cht-latency-"))
    try:
        admin = os.environ.get("POSTGRES_URL")
        if not admin:
            server = start_embedded_postgres(work / "pg")
            stops.append(server.stop)
            admin = server.url()
        name = f"latency_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        pg_url = psycopg.conninfo.make_conninfo(admin, dbname=name)
        couch = start_pouchdb_server(work / "couch")
        stops.append(couch.stop)
        prefix = "medic"
        dbs = [database_name(prefix, suffix) for suffix in SUFFIXES]
        say(f"loading {args.households} households into pouchdb-server {couch.url}")
        load_deployment(couch_clients(couch.url), generate(20260101, args.households), db_prefix=prefix)
        for db in dbs:  # once before the code location loads, so it knows the forms
            replicate_database(pg_url, CouchClient(couch.url, db), source=db, all_sources=dbs)
        port = free_port()
        env = {
            "COUCHDB_URL": couch.url,
            "COUCHDB_DBS": ",".join(dbs),
            "POSTGRES_URL": pg_url,
            "SUPERSET_URL": f"http://127.0.0.1:{free_port()}",
            "DAGSTER_UI_URL": f"http://127.0.0.1:{port}",
            "BACKUP_DIR": str(work / "backups"),
        }
        client = CouchClient(couch.url, dbs[0])
        instances = {"kept connections": DAGSTER_YAML, "Dagster's SQLite storage": INSTANCE_SETTINGS}
        for number, (label, config) in enumerate(instances.items()):
            home = work / f"dagster_home_{number}"
            home.mkdir()
            (home / "dagster.yaml").write_text(config)  # compute logs captured, as in a deployment
            measure(label, home, env, port, pg_url, client, args)
        # Runs start in processes of their own: on a busy machine their start-up dominates.
        say("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    finally:
        for stop in reversed(stops):
            stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
