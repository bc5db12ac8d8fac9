"""Superset's connection to the analytics database, as a read-only PostgreSQL role."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

import psycopg

from cht_assets.bi.bundle import BUNDLE_VERSION, Provisioned, require_one, stable_uuid, zip_bundle
from cht_assets.bi.client import JsonObject, SupersetClient

PASSWORD_MASK = "X" * 10  # Superset's placeholder for a password supplied separately


@dataclass(frozen=True)
class DatabaseConnection:
    """How Superset reaches the analytics database (a read-only role)."""

    name: str
    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)

    @property
    def uuid(self) -> str:
        return stable_uuid("database", self.name)

    @property
    def file_name(self) -> str:
        return f"databases/{self.uuid}.yaml"

    def sqlalchemy_uri(self, *, masked: bool = True) -> str:
        secret = PASSWORD_MASK if masked else self.password
        credentials = f"{quote(self.user, safe='')}:{quote(secret, safe='')}"
        return f"postgresql+psycopg2://{credentials}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"

    @classmethod
    def from_conninfo(
        cls,
        name: str,
        conninfo: str,
        user: str,
        password: str,
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> DatabaseConnection:
        """The server and database of `conninfo` (a URL or key=value string), as `user`;
        `host`/`port` override what Superset dials (e.g. from a container)."""
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        return cls(
            name=name,
            host=host or str(params.get("host") or "127.0.0.1"),
            port=port or int(params.get("port") or 5432),
            dbname=str(params.get("dbname") or "postgres"),
            user=user,
            password=password,
        )


def database_document(database: DatabaseConnection) -> JsonObject:
    return {
        "database_name": database.name,
        "sqlalchemy_uri": database.sqlalchemy_uri(masked=True),
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_csv_upload": False,
        "impersonate_user": False,
        "extra": {"allows_virtual_table_explore": True, "metadata_params": {}, "engine_params": {}},
        "uuid": database.uuid,
        "version": BUNDLE_VERSION,
        "is_managed_externally": True,
    }


def provision_database(client: SupersetClient, database: DatabaseConnection) -> Provisioned:
    """Create or update the database connection (the password goes in the import's form)."""
    bundle = zip_bundle({database.file_name: database_document(database)})
    client.import_assets(bundle, passwords={database.file_name: database.password})
    item = require_one(client, "database", database.uuid, f"database {database.name!r}")
    return Provisioned(
        "database", database.name, item["id"], database.uuid, {"uri": database.sqlalchemy_uri()}
    )
