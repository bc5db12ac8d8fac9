"""deploy/dagster.yaml works as documented: Dagster's run, event-log and schedule storage in a
PostgreSQL database of its own, connection from DAGSTER_PG_* (the SQLAlchemy 2.1 trap avoided),
through kept connections: a run's events all land there, and a run after the server restarted
finds its connection checked and renewed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.conftest import RestartablePostgres, fresh_database

PROJECT_ROOT = Path(__file__).resolve().parents[2]
QUEUE_CONFIG = """
import dagster as dg
coordinator = dg.DagsterInstance.get().run_coordinator
queue = coordinator.get_run_queue_config()
print(type(coordinator).__name__, queue.max_concurrent_runs, coordinator.dequeue_interval_seconds)
"""
# Two runs in one process, a pause between them (the test restarts PostgreSQL there).
TWO_RUNS = """
import sys, dagster as dg
from tests.ops.test_instance_storage import counted_assets
with dg.DagsterInstance.get() as instance:
    print(instance.get_ref().storage_data.class_name, flush=True)
    for prefix in ("before", "after"):
        result = dg.materialize(counted_assets(prefix, 5), instance=instance)
        print(result.run_id, len(instance.all_logs(result.run_id)), flush=True)
        if prefix == "before":
            sys.stdin.readline()
"""


def test_the_deployment_instance_uses_postgres(restartable_pg: RestartablePostgres, tmp_path: Path) -> None:
    database = fresh_database(restartable_pg.url())
    url = next(database)
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": str(params["host"]),
            "DAGSTER_PG_PORT": str(params["port"]),
            "DAGSTER_PG_USER": str(params["user"]),
            "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
            "DAGSTER_PG_DB": str(params["dbname"]),
        }
        dagster = str(Path(sys.executable).parent / "dagster")
        info = subprocess.run(
            [dagster, "instance", "info"], env=env, capture_output=True, text=True, timeout=120
        )
        assert info.returncode == 0, info.stderr[-2000:]
        for storage in ("PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"):
            assert storage in info.stdout
        queue = subprocess.run(
            [sys.executable, "-c", QUEUE_CONFIG], env=env, capture_output=True, text=True, timeout=120
        )
        assert queue.stdout.split() == ["QueuedRunCoordinator", "4", "2"], queue.stderr[-2000:]
        with psycopg.connect(url) as conn:
            tables = {
                row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            }
        assert {"runs", "event_logs", "jobs"} <= tables
        runs = subprocess.Popen(
            [sys.executable, "-c", TWO_RUNS],
            env=env,
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(tmp_path / "runs.log").open("w"),
            text=True,
        )
        assert runs.stdout.readline().strip() == "KeptPostgresStorage", (tmp_path / "runs.log").read_text()[
            -3000:
        ]
        before = runs.stdout.readline().split()
        restartable_pg.restart()  # the kept connections now point at a server that is gone
        out, _ = runs.communicate("\n", timeout=300)
        assert runs.returncode == 0
        after = out.split()
        with psycopg.connect(url) as conn:
            for run_id, logged in (before, after):
                stored = conn.execute(
                    "SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,)
                ).fetchone()
                assert stored[0] == int(logged) > 20, run_id
    finally:
        database.close()
