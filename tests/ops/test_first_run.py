"""The first run on an empty warehouse, through the README's own command: one
`dagster asset materialize -m cht_assets.definitions --select ...` builds every formview (the
code location reads the forms from CouchDB when the warehouse has none yet)."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.servers.dagster_dev import NO_COMPUTE_LOGS, PROJECT_ROOT
from cht_assets.servers.process import free_port
from tests.integration.pipeline import new_deployment

SEED, HOUSEHOLDS = 3, 30
DEMO_FORMS = sorted(path.stem for path in (PROJECT_ROOT / "cht_assets" / "demo" / "forms").glob("*.xml"))
# Everything but Superset (not started here) and the backups.
SELECTION = "not group:superset and not group:ops"


def test_one_materialize_on_an_empty_warehouse_builds_every_formview(
    couch_server, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = new_deployment(couch_server.url, pg_url, monkeypatch)
    load_deployment(couch_clients(couch_server.url), generate(SEED, HOUSEHOLDS), db_prefix=deployment.prefix)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'raw'").fetchone()[0] == 0
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(NO_COMPUTE_LOGS)
    env = {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(tmp_path),
        "DAGSTER_HOME": str(home),
        "COUCHDB_URL": couch_server.url,
        "COUCHDB_DBS": ",".join(deployment.dbs),
        "POSTGRES_URL": pg_url,
        "SUPERSET_URL": f"http://127.0.0.1:{free_port()}",
    }
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize"]
    command += ["-m", "cht_assets.definitions", "--select", SELECTION]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr + done.stdout

    reports = collections.Counter(
        doc["form"] for doc in deployment.docs() if doc.get("type") == "data_record" and doc.get("form")
    )
    # Undone death reports are rare: at this size there are none, and that formview is built empty.
    assert {form for form in DEMO_FORMS if reports[form]} == set(DEMO_FORMS) - {"undo_death_report"}, reports
    with psycopg.connect(pg_url) as conn:
        for form in DEMO_FORMS:
            assert conn.execute(f"SELECT count(*) FROM formview_{form}").fetchone()[0] == reports[form], form
        # What reads the formviews was built in the same run.
        registrations = conn.execute("SELECT count(*) FROM useview_pregnancy").fetchone()[0]
        assert registrations == reports["pregnancy"]
