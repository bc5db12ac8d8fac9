"""`make demo`: local services, a generated CHT deployment, every asset materialized, and the
Dagster UI on http://127.0.0.1:3000. A second run reuses what exists. Ctrl-C stops everything
this command started.

    python -m cht_assets.servers.demo [--households N] [--port 3000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import yaml

from cht_assets.bi.access_config import ACCESS_PATH
from cht_assets.bi.cht_managers import MARKER_ROLE
from cht_assets.bi.client import SupersetClient
from cht_assets.couch.client import CouchClient
from cht_assets.couch.errors import CouchError
from cht_assets.servers.couchdb import PROJECT_ROOT, start_pouchdb_server
from cht_assets.servers.dagster_dev import DAGSTER_YAML, default_sigint, stop_dagster_dev
from cht_assets.servers.postgres import ensure_database, start_embedded_postgres
from cht_assets.servers.process import port_open, stop_pid
from cht_assets.servers.superset import start_superset
from cht_assets.settings import (
    DEFAULT_COUCHDB_DBS,
    DEMO_COUCHDB_URL,
    DEMO_POSTGRES_URL,
    DEMO_SUPERSET_URL,
    load_dictionary_dir,
    load_metrics_settings,
    load_settings,
)
from cht_assets.warehouse.dictionary import HTML_FILE

DEMO_DIR = PROJECT_ROOT / ".demo"
SUPERSET_METADATA_DB = "superset_metadata"
DEMO_ACCESS_FILE = DEMO_DIR / "access.yaml"
DEMO_COUCHDB_DBS = (*DEFAULT_COUCHDB_DBS, "_users")
DEMO_CHT_ROLES = [{"role": "chw_supervisor"}]  # the generator's supervisors manage their hospital


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def demo_port(url: str, variable: str) -> int:
    """The port of a demo service, which must be free: else the user should point `variable`
    at the running service (or stop the other demo)."""
    port = urlsplit(url).port or 0
    if port_open("127.0.0.1", port):
        raise SystemExit(f"port {port} is taken: another demo running? set {variable} to use your own")
    return port


def start_services(stops: list[Callable[[], None]]) -> dict[str, str]:
    """Start embedded PostgreSQL, pouchdb-server and Superset unless their URLs are set."""
    env: dict[str, str] = {}
    if not os.environ.get("POSTGRES_URL"):
        server = start_embedded_postgres(DEMO_DIR / "postgres", demo_port(DEMO_POSTGRES_URL, "POSTGRES_URL"))
        stops.append(server.stop)
        ensure_database(server.url(), urlsplit(DEMO_POSTGRES_URL).path.lstrip("/"))
        say(f"PostgreSQL 18 (embedded) on 127.0.0.1:{server.port}, data in {DEMO_DIR / 'postgres'}")
        env["POSTGRES_URL"] = DEMO_POSTGRES_URL
    if not os.environ.get("COUCHDB_URL"):
        couch = start_pouchdb_server(DEMO_DIR / "couchdb", demo_port(DEMO_COUCHDB_URL, "COUCHDB_URL"))
        stops.append(couch.stop)
        say(f"pouchdb-server on {couch.url}, data in {DEMO_DIR / 'couchdb'}")
        env["COUCHDB_URL"] = DEMO_COUCHDB_URL
    if not os.environ.get("SUPERSET_URL"):
        port = demo_port(DEMO_SUPERSET_URL, "SUPERSET_URL")
        postgres_url = env.get("POSTGRES_URL") or os.environ["POSTGRES_URL"]
        ensure_database(postgres_url, SUPERSET_METADATA_DB)
        metadata_url = psycopg.conninfo.make_conninfo(postgres_url, dbname=SUPERSET_METADATA_DB)
        say("starting Superset (the first start sets up its metadata database, about 30 s)")
        superset = start_superset(DEMO_DIR / "superset", metadata_url, port)
        stops.append(superset.stop)
        env["SUPERSET_URL"] = superset.url
    return env


def needs_seed(couchdb_url: str, db: str) -> bool:
    try:
        return CouchClient(couchdb_url, db).db_info().get("doc_count", 0) == 0
    except CouchError:
        return True


def seed(couchdb_url: str, households: int) -> None:
    from cht_assets.demo.cli import main as load_demo_data

    say(f"generating a CHT deployment with {households} households into CouchDB")
    load_demo_data(["--couchdb-url", couchdb_url, "--households", str(households)])


def demo_access_file() -> Path:
    """The shipped access.yaml with managers from CHT turned on (`chw_supervisor`)."""
    access = yaml.safe_load(ACCESS_PATH.read_text()) or {}
    access["cht_roles"] = DEMO_CHT_ROLES
    DEMO_ACCESS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEMO_ACCESS_FILE.write_text(yaml.safe_dump(access, sort_keys=False))
    return DEMO_ACCESS_FILE


def demo_password(username: str) -> str:
    return f"{username}-demo"


def supervisor_logins(client: SupersetClient) -> list[tuple[str, str]]:
    """Demo only: the provisioned CHT supervisors get a known password (the pipeline never sets
    one), so that a newcomer can log in as one. Returns (username, password) pairs."""
    logins = []
    for user in client.list_all("security/users"):
        if user["active"] and MARKER_ROLE in {r["name"] for r in user["roles"]}:
            password = demo_password(user["username"])
            body = {k: user[k] for k in ("first_name", "last_name", "email", "active")}
            roles = [r["id"] for r in user["roles"]]
            client.put(f"/api/v1/security/users/{user['id']}", {**body, "roles": roles, "password": password})
            logins.append((user["username"], password))
    return sorted(logins)


def dagster(args: list[str]) -> list[str]:
    return [str(Path(sys.executable).parent / "dagster"), *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=int(os.environ.get("DEMO_HOUSEHOLDS", "60")))
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    # Ctrl-C (or a TERM from a process manager) stops everything started below, in reverse.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    stops: list[Callable[[], None]] = []
    try:
        env = {**os.environ, **start_services(stops)}
        if not env.get("COUCHDB_DBS"):  # the demo's users (roles, names) come from `_users` too
            env["COUCHDB_DBS"] = ",".join(DEMO_COUCHDB_DBS)
        if not env.get("SUPERSET_ACCESS_FILE"):
            env["SUPERSET_ACCESS_FILE"] = str(demo_access_file())
        os.environ.update(env)
        settings = load_settings()
        if needs_seed(settings.couchdb_url, settings.couchdb_dbs[0]):
            seed(settings.couchdb_url, args.households)
        home = DEMO_DIR / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        if not (home / "dagster.yaml").exists():
            (home / "dagster.yaml").write_text(DAGSTER_YAML)
        env["DAGSTER_HOME"] = str(home)
        # Alert links, and where the forms sensor asks for a reload when forms change.
        env.setdefault("DAGSTER_UI_URL", f"http://127.0.0.1:{args.port}")
        # Once: on an empty warehouse the code location reads the forms from CouchDB.
        say("materializing every asset")
        subprocess.run(
            dagster(["asset", "materialize", "-m", "cht_assets.definitions", "--select", "*"]),
            env=env,
            check=True,
            cwd=PROJECT_ROOT,
        )
        say(
            f"Superset on {settings.superset_url} (login {settings.superset_user} / {settings.superset_password})"
        )
        with SupersetClient(
            settings.superset_url, settings.superset_user, settings.superset_password
        ) as client:
            for username, password in supervisor_logins(client):
                say(f"  a CHW supervisor, who sees only their area: login {username} / {password}")
        # Prometheus metrics read the Dagster UI's webserver (DAGSTER_UI_URL above), so beside it.
        metrics = subprocess.Popen(
            [str(Path(sys.executable).parent / "cht-metrics")],
            env=env,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
        stops.append(lambda: stop_pid(metrics.pid))
        listen = load_metrics_settings()
        say(f"Prometheus metrics on http://{listen.host}:{listen.port}/metrics (Grafana: deploy/grafana/)")
        say(
            f"data dictionary (every form, field, choice and view column): {load_dictionary_dir() / HTML_FILE}"
        )
        say(f"Dagster UI on http://127.0.0.1:{args.port} (Ctrl-C stops the demo)")
        ui = subprocess.Popen(
            dagster(["dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.port)]),
            env=env, cwd=PROJECT_ROOT, start_new_session=True, preexec_fn=default_sigint,
        )  # fmt: skip
        stops.append(lambda: stop_dagster_dev(ui))
        ui.wait()
    except KeyboardInterrupt:
        say("stopping")
    finally:
        for stop in reversed(stops):
            stop()
    return 0


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
