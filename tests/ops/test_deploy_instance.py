"""deploy/dagster.yaml works as documented: Dagster's run, event-log and schedule storage in a
PostgreSQL database of its own, connection from DAGSTER_PG_* (the SQLAlchemy 2.1 trap avoided)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.conftest import fresh_database

PROJECT_ROOT = Path(__file__).resolve().parents[2]
QUEUE_CONFIG = """
import dagster as dg
coordinator = dg.DagsterInstance.get().run_coordinator
queue = coordinator.get_run_queue_config()
print(type(coordinator).__name__, queue.max_concurrent_runs, coordinator.dequeue_interval_seconds)
"""


def test_the_deployment_instance_uses_postgres(embedded_pg_admin_url: str, tmp_path: Path) -> None:
    database = fresh_database(embedded_pg_admin_url)
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
    finally:
        database.close()
