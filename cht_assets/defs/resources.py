"""Resources: where CouchDB and PostgreSQL are.

Connection URLs may hold credentials, so by default they are read from the environment at run
time (cht_assets.settings) and never enter Dagster's run config, metadata or UI. Tests pass
explicit, credential-free URLs.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from pydantic import PrivateAttr

from cht_assets.couch.client import CouchClient
from cht_assets.settings import load_settings


class CouchDBResource(dg.ConfigurableResource):
    """A CouchDB server; `url` overrides COUCHDB_URL."""

    url: str | None = None
    timeout_seconds: float = 60.0

    def client(self, db: str) -> CouchClient:
        return CouchClient(self.url or load_settings().couchdb_url, db, timeout=self.timeout_seconds)


class PostgresResource(dg.ConfigurableResource):
    """The analytics database; `url` overrides POSTGRES_URL."""

    url: str | None = None
    _session: psycopg.Connection | None = PrivateAttr(default=None)

    @property
    def conninfo(self) -> str:
        return self.url or load_settings().postgres_url

    @contextmanager
    def session(self) -> Iterator[psycopg.Connection]:
        """An autocommit connection shared by the steps of one run (the in-process executor
        runs them one after another): a new backend per step would cost a connection and
        cold catalog and plan caches each time. Replaced when broken (a server restart), and
        a step that leaves a transaction open has it rolled back."""
        session = self._session
        if session is None or session.closed or session.broken:
            session = psycopg.connect(self.conninfo, autocommit=True)
            # sqlnames.quote_literal relies on it; on by default, but a server may say otherwise.
            session.execute("SET standard_conforming_strings = on")
            # A refresh writes its rows and its state in one transaction: a commit lost in a crash
            # is redone by the next refresh, so none need wait for the disk (~1 ms each, 230 a run).
            session.execute("SET synchronous_commit = off")
            self._session = session
        try:
            yield session
        finally:
            if not session.closed and session.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                session.rollback()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def resources() -> dict[str, dg.ConfigurableResource]:
    return {"couchdb": CouchDBResource(), "postgres": PostgresResource()}
