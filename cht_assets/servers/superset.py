"""Apache Superset 6.1.0 in its own venv, its metadata DB on PostgreSQL, served by gunicorn on a
free 127.0.0.1 port and stopped by PID.

Superset pins SQLAlchemy < 2, pandas < 2.2 and numpy < 2.3, so it never shares the pipeline's venv;
`superset/constraints.txt` is the tested pin set (the plain install is broken by dependency drift).

    python -m cht_assets.servers.superset install [--venv DIR]

The admin account is SUPERSET_USER / SUPERSET_PASSWORD (defaults are test-only); the secret key is
SUPERSET_SECRET_KEY (see superset/superset_config.py). Passwords reach Superset's CLI through the
environment, never through the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
import requests

from cht_assets.servers.process import free_port, spawn, stop_pid, wait_until
from cht_assets.settings import load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SUPERSET_DIR = PROJECT_ROOT / "superset"
CONSTRAINTS = SUPERSET_DIR / "constraints.txt"
CONFIG_PATH = SUPERSET_DIR / "superset_config.py"
DEFAULT_VENV = PROJECT_ROOT / ".superset-venv"
SUPERSET_VERSION = "6.1.0"
# The three fixes of the notes (rich, cachetools, flask-caching) plus the PostgreSQL driver.
PACKAGES = (
    f"apache-superset=={SUPERSET_VERSION}",
    "psycopg2-binary",
    "rich",
    "cachetools",
    "flask-caching",
    "gunicorn",
)
INSTALL_MARKER = ".cht-installed"


# Secrets of the pipeline that Superset's processes must not inherit.
SERVER_NEEDS_NOT = (
    "SUPERSET_PASSWORD",
    "SUPERSET_DB_PASSWORD",
    "ANALYST_DB_PASSWORD",
    "POSTGRES_URL",
    "COUCHDB_URL",
)


class SupersetError(RuntimeError):
    """Installing, bootstrapping or starting Superset failed."""


# --- install -----------------------------------------------------------------------------------


def install_fingerprint(constraints: Path = CONSTRAINTS) -> str:
    """What an install depends on: the constraints file and the package list."""
    digest = hashlib.sha256(constraints.read_bytes())
    digest.update("\n".join(PACKAGES).encode())
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return digest.hexdigest()


def venv_bin(venv_dir: Path, name: str) -> Path:
    return venv_dir / "bin" / name


def is_installed(venv_dir: Path = DEFAULT_VENV, constraints: Path = CONSTRAINTS) -> bool:
    marker = venv_dir / INSTALL_MARKER
    return (
        marker.exists()
        and venv_bin(venv_dir, "superset").exists()
        and marker.read_text().strip() == install_fingerprint(constraints)
    )


def run_checked(command: list[str], *, what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise SupersetError(f"{what} failed (exit {result.returncode}):\n{tail}")


def install_superset(venv_dir: Path = DEFAULT_VENV, constraints: Path = CONSTRAINTS) -> bool:
    """Create `venv_dir` with Superset and its PostgreSQL driver, pinned by `constraints`.

    Idempotent: returns False without touching anything when the venv already holds an install
    made from the same constraints; True after an (re)install."""
    if is_installed(venv_dir, constraints):
        return False
    marker = venv_dir / INSTALL_MARKER
    marker.unlink(missing_ok=True)
    if not venv_bin(venv_dir, "python").exists():
        run_checked([sys.executable, "-m", "venv", str(venv_dir)], what="creating the Superset venv")
    pip = [str(venv_bin(venv_dir, "python")), "-m", "pip", "--disable-pip-version-check", "-q"]
    run_checked([*pip, "install", "--upgrade", "pip", "setuptools", "wheel"], what="upgrading pip")
    run_checked([*pip, "install", *PACKAGES, "-c", str(constraints)], what="pip install apache-superset")
    run_checked([*pip, "check"], what="pip check in the Superset venv")
    marker.write_text(install_fingerprint(constraints) + "\n")
    return True


# --- bootstrap and run -------------------------------------------------------------------------


@dataclass
class SupersetServer:
    url: str
    pid: int
    home_dir: Path
    log: Path

    def stop(self) -> None:
        # gunicorn's master stops its workers on SIGTERM (graceful, then it kills them).
        stop_pid(self.pid, timeout=30)


def sqlalchemy_url(conninfo: str) -> str:
    """A libpq conninfo (URL or `key=value`) as Superset's SQLAlchemy URL (psycopg2 driver)."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = quote(str(params.pop("user", "") or ""), safe="")
    password = params.pop("password", None)
    credentials = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = params.pop("host", None) or "127.0.0.1"
    port = params.pop("port", None) or 5432
    dbname = quote(str(params.pop("dbname", None) or "postgres"), safe="")
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql+psycopg2://{credentials}{host}:{port}/{dbname}{query}"


def admin_credentials() -> tuple[str, str]:
    settings = load_settings()
    return settings.superset_user, settings.superset_password


def superset_env(venv_dir: Path, home_dir: Path, metadata_db_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SUPERSET_HOME=str(home_dir),
        SUPERSET_CONFIG_PATH=str(CONFIG_PATH),
        SUPERSET_METADATA_DB_URL=sqlalchemy_url(metadata_db_url),
        FLASK_APP="superset",
        PATH=f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    env.pop("VIRTUAL_ENV", None)
    for secret in SERVER_NEEDS_NOT:  # the server never needs these; keep them out of its /proc
        env.pop(secret, None)
    return env


def is_bootstrapped(metadata_db_url: str, admin_user: str) -> bool:
    """True when the metadata DB holds Superset's schema, its roles and the admin user."""
    with psycopg.connect(metadata_db_url, connect_timeout=10) as conn:
        if conn.execute("SELECT to_regclass('public.ab_user') IS NULL").fetchone()[0]:
            return False
        admin = conn.execute("SELECT 1 FROM ab_user WHERE username = %s", (admin_user,)).fetchone()
        gamma = conn.execute("SELECT 1 FROM ab_role WHERE name = 'Gamma'").fetchone()
        return admin is not None and gamma is not None


# Creates the admin from the environment, so the password never appears on a command line.
CREATE_ADMIN = """
import os
from superset.app import create_app
app = create_app()
with app.app_context():
    from superset import security_manager as sm
    name = os.environ["CHT_SUPERSET_ADMIN_USER"]
    if sm.find_user(username=name) is None:
        user = sm.add_user(name, "Superset", "Admin", f"{name}@localhost", sm.find_role("Admin"),
                           password=os.environ["CHT_SUPERSET_ADMIN_PASSWORD"])
        if not user:
            raise SystemExit("could not create the Superset admin user")
"""


def bootstrap_superset(venv_dir: Path, home_dir: Path, metadata_db_url: str) -> None:
    """`superset db upgrade`, the admin user, `superset init`: 15-30 s on a fresh metadata DB."""
    user, password = admin_credentials()
    env = superset_env(venv_dir, home_dir, metadata_db_url)
    superset = str(venv_bin(venv_dir, "superset"))
    run_checked([superset, "db", "upgrade"], what="superset db upgrade", env=env)
    admin_env = {**env, "CHT_SUPERSET_ADMIN_USER": user, "CHT_SUPERSET_ADMIN_PASSWORD": password}
    run_checked(
        [str(venv_bin(venv_dir, "python")), "-c", CREATE_ADMIN], what="creating the admin", env=admin_env
    )
    run_checked([superset, "init"], what="superset init", env=env)


def healthy(url: str) -> bool:
    try:
        response = requests.get(f"{url}/health", timeout=2)
        return response.status_code == 200 and response.text.strip() == "OK"
    except requests.RequestException:
        return False


def start_superset(
    home_dir: Path,
    metadata_db_url: str,
    port: int | None = None,
    *,
    venv_dir: Path = DEFAULT_VENV,
    workers: int = 2,
    threads: int = 4,
) -> SupersetServer:
    """Serve Superset on 127.0.0.1 (a free port unless given), bootstrapping the metadata DB on
    first use; returns once /health answers."""
    if not venv_bin(venv_dir, "gunicorn").exists():
        raise SupersetError(
            f"Superset is not installed in {venv_dir}: run `python -m cht_assets.servers.superset install`"
        )
    home_dir.mkdir(parents=True, exist_ok=True)
    if not is_bootstrapped(metadata_db_url, admin_credentials()[0]):
        bootstrap_superset(venv_dir, home_dir, metadata_db_url)
    port = port or free_port()
    log = home_dir / "superset.log"
    command = [
        str(venv_bin(venv_dir, "gunicorn")),
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--timeout", "120",
        "--bind", f"127.0.0.1:{port}",
        "--pid", str(home_dir / "gunicorn.pid"),
        "--no-control-socket",  # its default path is per user: two servers would share it
        "superset.app:create_app()",
    ]  # fmt: skip
    process = spawn(command, log=log, env=superset_env(venv_dir, home_dir, metadata_db_url))
    server = SupersetServer(f"http://127.0.0.1:{port}", process.pid, home_dir, log)
    try:
        wait_until(
            lambda: _alive(process, log) and healthy(server.url), timeout=120, what="Superset", log=log
        )
    except TimeoutError:
        server.stop()
        raise
    return server


def _alive(process: subprocess.Popen, log: Path) -> bool:
    if process.poll() is not None:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise SupersetError(f"Superset exited with code {process.returncode} before answering\n{tail}")
    return True


# --- CLI ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cht_assets.servers.superset")
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="create the Superset venv (skipped when up to date)")
    install.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    install.add_argument("--constraints", type=Path, default=CONSTRAINTS)
    args = parser.parse_args(argv)
    if args.command == "install":
        started = time.monotonic()
        changed = install_superset(args.venv, args.constraints)
        state = "installed" if changed else "already up to date"
        print(f"Superset {SUPERSET_VERSION} {state} in {args.venv} ({time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
