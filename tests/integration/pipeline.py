"""Run the real Dagster graph (raw + views) against the test servers, as the code location
would: definitions built from the environment, formviews discovered from the database."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg
import psycopg
import pytest

from cht_assets.couch.client import CouchClient
from cht_assets.defs.raw import build_raw_assets
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.warehouse.checks import CARRY_AT_MOST
from tests.support import dagster as support

SUFFIXES = ("", "-sentinel", "-users-meta", "-logs", "-users")  # -users: the demo loader's `_users`


@dataclass
class Deployment:
    couch_url: str
    pg_url: str
    prefix: str

    @property
    def dbs(self) -> list[str]:
        return [self.prefix + suffix for suffix in SUFFIXES]

    def client(self, suffix: str = "") -> CouchClient:
        return CouchClient(self.couch_url, self.prefix + suffix)

    def docs(self, suffix: str = "") -> list[dict[str, Any]]:
        """Live docs straight from CouchDB: the independent side of every comparison."""
        rows = (
            self.client(suffix)._request("GET", "/_all_docs", params={"include_docs": "true"}).json()["rows"]
        )
        return [row["doc"] for row in rows]

    def resources(self) -> dict[str, Any]:
        return {"couchdb": CouchDBResource(url=self.couch_url), "postgres": PostgresResource(url=self.pg_url)}


def new_deployment(couch_url: str, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    deployment = Deployment(couch_url, pg_url, f"d{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("COUCHDB_DBS", ",".join(deployment.dbs))
    monkeypatch.setenv("COUCHDB_URL", couch_url)
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    # The data dictionary asset (form_choices, which the use views' choice labels read) writes its
    # page here, never into the checkout's .demo/.
    monkeypatch.setenv("DICTIONARY_DIR", tempfile.mkdtemp(prefix=f"dictionary-{deployment.prefix}-"))
    return deployment


def new_empty_deployment(couch_url: str, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    """A deployment whose databases exist in CouchDB, empty."""
    deployment = new_deployment(couch_url, pg_url, monkeypatch)
    for suffix in SUFFIXES:
        deployment.client(suffix).create_db()
    return deployment


def materialize_all(
    deployment: Deployment, *, raise_on_error: bool = True
) -> tuple[dg.ExecuteInProcessResult, dg.ExecuteInProcessResult]:
    """Raw first, then everything with definitions loaded anew (formviews of the synced forms)
    and the data dictionary (its `form_choices` give the use views' choice labels). Both runs'
    results: the raw run holds the new docs' checks."""
    resources = deployment.resources()
    with support.dagster_instance() as instance:
        raw = support.materialize(build_raw_assets(), resources, instance=instance)
        full = support.materialize(
            support.location_assets(dictionary=True),
            resources,
            instance=instance,
            raise_on_error=raise_on_error,
        )
    return raw, full


def materialize(deployment: Deployment, *, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """As `materialize_all`, the second run's result."""
    return materialize_all(deployment, raise_on_error=raise_on_error)[1]


def materialize_only(deployment: Deployment, names: Iterable[str]) -> dg.ExecuteInProcessResult:
    """The named view assets alone (the rest of the graph as it is in PostgreSQL)."""
    assets = support.location_assets()
    wanted = set(names)
    keys = [
        key
        for asset in assets
        if isinstance(asset, dg.AssetsDefinition)
        for key in asset.keys
        if key.path[-1] in wanted
    ]
    return support.materialize(assets, deployment.resources(), selection=keys)


def metadata(result: dg.ExecuteInProcessResult, name: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[-1] == name:
            return {key: value.value for key, value in event.materialization.metadata.items()}
    raise KeyError(name)


def age_findings(pg_url: str) -> None:
    """Make every stored check finding older than a finding is carried: the next run checks
    again, as it would an hour later (a test that edits rows behind the pipeline's back needs
    this, since the objects' data versions did not move)."""
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "UPDATE cht_meta.check_findings SET checked_at = checked_at - %s - interval '1 minute'",
            (CARRY_AT_MOST,),
        )
