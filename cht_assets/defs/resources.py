"""Resources: where CouchDB and PostgreSQL are.

Connection URLs may hold credentials, so by default they are read from the environment at run
time (cht_assets.settings) and never enter Dagster's run config, metadata or UI. Tests pass
explicit, credential-free URLs.
"""

import dagster as dg

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

    @property
    def conninfo(self) -> str:
        return self.url or load_settings().postgres_url


def resources() -> dict[str, dg.ConfigurableResource]:
    return {"couchdb": CouchDBResource(), "postgres": PostgresResource()}
