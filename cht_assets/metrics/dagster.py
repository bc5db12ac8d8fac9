"""What the Dagster instance knows, asked of the webserver's GraphQL API (DAGSTER_WEBSERVER_URL):
every asset's group, last materialization, freshness state and the latest result of each of its
checks; per CouchDB database, the docs/s of its last sync and its failed runs (runs tagged
`cht/couchdb_db`, as the update_seq sensor tags them). One POST a scrape, the same reads the UI
makes; it works alike over `dagster dev`'s SQLite instance and a PostgreSQL one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

TIMEOUT_SECONDS = 10
DB_TAG = "cht/couchdb_db"
FAILED_CHECK = {"FAILED", "EXECUTION_FAILED"}
DOCS_PER_SECOND = "docs_per_second"

ASSETS = """
  assetNodes {
    assetKey { path } groupName
    freshnessStatusInfo { freshnessStatus }
    assetChecksOrError { ... on AssetChecks { checks {
      name executionForLatestMaterialization { status evaluation { severity } }
    } } }
  }
  assetsOrError { __typename ... on AssetConnection { nodes { key { path } latestMaterializationTimestamp } }
                  ... on PythonError { message } }
  raw: assetNodes(assetKeys: $raw) {
    assetKey { path }
    assetMaterializations(limit: 1) { metadataEntries {
      label ... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intValue }
    } }
  }
"""
FAILED_RUNS = """
  failed_runs_{i}: runsOrError(filter: {{tags: [{{key: "{tag}", value: $db_{i}}}], statuses: [FAILURE]}}) {{
    __typename ... on Runs {{ count }} ... on PythonError {{ message }}
  }}
"""


class DagsterUnavailable(RuntimeError):
    """The webserver did not answer, or answered with errors."""


@dataclass(frozen=True)
class CheckState:
    name: str
    failed: bool
    severity: str | None  # ERROR or WARN, from the evaluation; None when it did not evaluate


@dataclass
class AssetState:
    group: str
    freshness: str | None = None  # Dagster's AssetHealthStatus; None: no freshness policy
    materialized_at: float | None = None  # epoch seconds
    checks: list[CheckState] = field(default_factory=list)


@dataclass(frozen=True)
class DagsterSnapshot:
    assets: dict[str, AssetState]  # by asset key, `group/name`
    docs_per_second: dict[str, float]  # by CouchDB database: its last sync's rate
    failed_runs: dict[str, int]  # by CouchDB database


def dagster_name(db: str) -> str:
    """A CouchDB database's name in asset keys, as cht_assets.defs.raw.asset_name makes it."""
    return re.sub(r"[^A-Za-z0-9_]", "_", db)


def raw_key(db: str) -> str:
    return f"raw/{dagster_name(db)}"


def key_text(path: Sequence[str]) -> str:
    return "/".join(path)


def metrics_query(dbs: Sequence[str]) -> str:
    params = ", ".join(["$raw: [AssetKeyInput!]!", *(f"$db_{i}: String!" for i in range(len(dbs)))])
    runs = "".join(FAILED_RUNS.format(i=i, tag=DB_TAG) for i in range(len(dbs)))
    return f"query Metrics({params}) {{{ASSETS}{runs}}}"


def metrics_variables(dbs: Sequence[str]) -> dict[str, Any]:
    raw = [{"path": raw_key(db).split("/")} for db in dbs]
    return {"raw": raw, **{f"db_{i}": db for i, db in enumerate(dbs)}}


def post_graphql(webserver_url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    try:
        response = requests.post(
            f"{webserver_url.rstrip('/')}/graphql",
            json={"query": query, "variables": variables},
            timeout=TIMEOUT_SECONDS,
        )
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise DagsterUnavailable(f"Dagster webserver: {exc}") from exc
    if body.get("errors"):
        raise DagsterUnavailable(f"Dagster GraphQL: {body['errors'][0].get('message', body['errors'][0])}")
    return body["data"]


def read_dagster(webserver_url: str, dbs: Sequence[str]) -> DagsterSnapshot:
    data = post_graphql(webserver_url, metrics_query(dbs), metrics_variables(dbs))
    return parse_snapshot(data, dbs)


def parse_snapshot(data: dict[str, Any], dbs: Sequence[str]) -> DagsterSnapshot:
    assets = {key_text(node["assetKey"]["path"]): asset_state(node) for node in data["assetNodes"]}
    records = answer(data["assetsOrError"], "AssetConnection")
    for record in records["nodes"]:
        asset = assets.get(key_text(record["key"]["path"]))
        if asset is not None and record["latestMaterializationTimestamp"] is not None:
            asset.materialized_at = record["latestMaterializationTimestamp"] / 1000  # sent in ms
    rates = {key_text(node["assetKey"]["path"]): last_rate(node) for node in data["raw"]}
    docs_per_second = {db: rate for db in dbs if (rate := rates.get(raw_key(db))) is not None}
    failed_runs = {db: answer(data[f"failed_runs_{i}"], "Runs")["count"] for i, db in enumerate(dbs)}
    return DagsterSnapshot(assets, docs_per_second, failed_runs)


def answer(union: dict[str, Any], expected: str) -> dict[str, Any]:
    """A GraphQL `...OrError` union's value, or DagsterUnavailable with the error's message."""
    if union.get("__typename") != expected:
        raise DagsterUnavailable(f"Dagster GraphQL: {union.get('message') or union.get('__typename')}")
    return union


def asset_state(node: dict[str, Any]) -> AssetState:
    freshness = node["freshnessStatusInfo"]
    checks = (node["assetChecksOrError"] or {}).get("checks") or []
    return AssetState(
        group=node["groupName"],
        freshness=freshness["freshnessStatus"] if freshness else None,
        checks=[state for check in checks if (state := check_state(check)) is not None],
    )


def check_state(check: dict[str, Any]) -> CheckState | None:
    """The check's result for its asset's latest materialization; None when it has none yet."""
    execution = check["executionForLatestMaterialization"]
    if execution is None or execution["status"] == "IN_PROGRESS":
        return None
    evaluation = execution["evaluation"]
    return CheckState(
        check["name"], execution["status"] in FAILED_CHECK, evaluation and evaluation["severity"]
    )


def last_rate(node: dict[str, Any]) -> float | None:
    for event in node["assetMaterializations"][:1]:
        for entry in event["metadataEntries"]:
            if entry["label"] == DOCS_PER_SECOND:
                value = entry.get("floatValue", entry.get("intValue"))
                return float(value) if value is not None else None
    return None
