"""Every environment variable the pipeline reads, in one place.

Unset variables mean the demo's local services (`make demo` starts them on these ports).
A `.env` file in the working directory is read first; real environment variables win.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dotenv import load_dotenv

DEMO_COUCHDB_URL = "http://127.0.0.1:15984"
DEMO_POSTGRES_URL = "postgresql://postgres@127.0.0.1:15432/cht_analytics"
DEFAULT_COUCHDB_DBS = ("medic", "medic-sentinel", "medic-users-meta", "medic-logs")
DEMO_SUPERSET_URL = "http://127.0.0.1:18088"
DEFAULT_SUPERSET_USER = "admin"
# Only for the local demo and the tests; a deployment sets SUPERSET_PASSWORD.
DEMO_SUPERSET_PASSWORD = "test-only-admin-password"  # noqa: S105


@dataclass(frozen=True)
class Settings:
    couchdb_url: str
    couchdb_dbs: tuple[str, ...]
    postgres_url: str
    couchdb_batch_size: int
    superset_url: str
    superset_user: str
    superset_password: str


def split_list(value: str) -> tuple[str, ...]:
    """`a,b c` -> ('a', 'b', 'c'): CHT tools accept comma- or space-separated lists."""
    return tuple(part for part in value.replace(",", " ").split() if part)


def load_settings() -> Settings:
    load_dotenv(override=False)
    dbs = os.environ.get("COUCHDB_DBS", "")
    return Settings(
        couchdb_url=os.environ.get("COUCHDB_URL") or DEMO_COUCHDB_URL,
        couchdb_dbs=split_list(dbs) or DEFAULT_COUCHDB_DBS,
        postgres_url=os.environ.get("POSTGRES_URL") or DEMO_POSTGRES_URL,
        couchdb_batch_size=int(os.environ.get("COUCHDB_BATCH_SIZE") or 5000),
        superset_url=os.environ.get("SUPERSET_URL") or DEMO_SUPERSET_URL,
        superset_user=os.environ.get("SUPERSET_USER") or DEFAULT_SUPERSET_USER,
        superset_password=os.environ.get("SUPERSET_PASSWORD") or DEMO_SUPERSET_PASSWORD,
    )
