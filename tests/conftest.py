"""Real servers for the tests: embedded PostgreSQL 18 (or TEST_POSTGRES_URL), the machine's
PostgreSQL 15 where a test asks for it, and pouchdb-server. Each starts on a free 127.0.0.1 port
and stops by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cht_assets.couch.client import CouchClient
from cht_assets.servers.couchdb import PouchDBServer, start_pouchdb_server
from cht_assets.servers.postgres import EmbeddedPostgres, start_embedded_postgres
from cht_assets.servers.process import free_port, port_open

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SYSTEM_POSTGRES_URL = os.environ.get("SYSTEM_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def embedded_pg_admin_url() -> Iterator[str]:
    if os.environ.get("TEST_POSTGRES_URL"):
        yield os.environ["TEST_POSTGRES_URL"]
        return
    with postgres_home() as home:
        server = start_embedded_postgres(home / "data")
        try:
            yield server.url()
        finally:
            server.stop()


@contextlib.contextmanager
def postgres_home() -> Iterator[Path]:
    """A directory for an embedded server's data, outside pytest's temporary root: as root the
    server runs as another user, and every new pytest session on the machine chmods
    /tmp/pytest-of-<user> back to 0700, which took the data directory away from a running server
    (a unit-test run beside the suite crashed it)."""
    home = Path(tempfile.mkdtemp(prefix="cht-test-pg-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def system_pg_admin_url() -> str:
    if not port_open("127.0.0.1", 5432):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    return SYSTEM_POSTGRES_URL


def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["pg18-embedded"])
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database. Parametrize with 'pg15-system' to run on the machine's PostgreSQL."""
    fixture = "system_pg_admin_url" if request.param == "pg15-system" else "embedded_pg_admin_url"
    yield from fresh_database(request.getfixturevalue(fixture))


@pytest.fixture(scope="session")
def couch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PouchDBServer]:
    server = start_pouchdb_server(tmp_path_factory.mktemp("pouchdb"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def couch_db(couch_server: PouchDBServer) -> Iterator[CouchClient]:
    """A fresh database on the session's pouchdb-server."""
    client = CouchClient(couch_server.url, f"test-{uuid.uuid4().hex[:10]}")
    client.create_db()
    try:
        yield client
    finally:
        client.delete_db()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "cht-sample-docs").is_dir():
        pytest.skip(f"reference data not found at {SHARED}; CI and developer machines have it")
    return SHARED


@dataclass
class RestartablePostgres:
    """An embedded PostgreSQL of the test's own, restarted on the same data dir and port."""

    data_dir: Path
    port: int
    server: EmbeddedPostgres

    def url(self, database: str = "postgres") -> str:
        return self.server.url(database)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = start_embedded_postgres(self.data_dir, self.port)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def restartable_pg() -> Iterator[RestartablePostgres]:
    with postgres_home() as home:
        data_dir, port = home / "data", free_port()
        pg = RestartablePostgres(data_dir, port, start_embedded_postgres(data_dir, port))
        try:
            yield pg
        finally:
            pg.stop()
