"""cht_assets.metrics without servers: seqs, the GraphQL query against Dagster's own schema, the
answer's parsing, the metric families built from known snapshots, BACKUP_DIR, a scrape whose
sources are all unreachable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from cht_assets.backup.files import partial, stamp
from cht_assets.defs import sensors
from cht_assets.defs.raw import asset_name
from cht_assets.metrics.backups import NewestBackup, read_backups
from cht_assets.metrics.collector import ChtCollector, MetricsConfig, Snapshot, build_families
from cht_assets.metrics.dagster import (
    DB_TAG,
    AssetState,
    CheckState,
    DagsterSnapshot,
    DagsterUnavailable,
    dagster_name,
    metrics_query,
    parse_snapshot,
)
from cht_assets.metrics.postgres import ObjectState, PostgresSnapshot, Progress, seq_number
from cht_assets.servers.process import free_port

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


class Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def exposition(families: list[Metric]) -> Samples:
    registry = CollectorRegistry()
    registry.register(Fixed(families))
    return samples(generate_latest(registry).decode())


def config(tmp_path: Path, **overrides: Any) -> MetricsConfig:
    values = {
        "postgres_url": "postgresql://metrics:secret@db.example.org:5432/cht_analytics",
        "couchdb_url": "https://admin:pass@cht.example.org:6984",
        "dbs": ("medic", "medic-sentinel"),
        "webserver_url": "http://127.0.0.1:3000",
        "backup_dir": tmp_path,
        "sync_window_seconds": 1800.0,
    }
    return MetricsConfig(**{**values, **overrides})


@pytest.mark.parametrize(
    ("seq", "number"),
    [("123-g1AAAAJ7eJzLYWBgYMlgTmFQSUlKzi9KdUhJ", 123), ("42", 42), ("0", 0), ("now", None), ("", None)],
)
def test_the_sequence_is_the_numeric_prefix_of_the_seq(seq: str, number: int | None) -> None:
    assert seq_number(seq) == number


@pytest.mark.parametrize("db", ["medic", "medic-sentinel", "medic-users-meta", "_users", "a.b c"])
def test_database_names_become_the_asset_names_the_pipeline_gives_them(db: str) -> None:
    assert dagster_name(db) == asset_name(db)


def test_failed_runs_are_found_by_the_tag_the_update_seq_sensor_gives_them() -> None:
    assert DB_TAG == sensors.DB_TAG


def test_the_query_is_valid_for_the_installed_dagster_webserver() -> None:
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    schema = create_schema().graphql_schema
    assert validate(schema, parse(metrics_query(["medic", "medic-users-meta", "_users"]))) == []


def graphql_answer() -> dict[str, Any]:
    def node(path: list[str], group: str, freshness: str | None, checks: list[dict]) -> dict[str, Any]:
        return {
            "assetKey": {"path": path},
            "groupName": group,
            "freshnessStatusInfo": {"freshnessStatus": freshness} if freshness else None,
            "assetChecksOrError": {"checks": checks},
        }

    def check(name: str, status: str | None, severity: str | None = "ERROR") -> dict[str, Any]:
        execution = None
        if status:
            evaluation = {"severity": severity} if severity else None
            execution = {"status": status, "evaluation": evaluation}
        return {"name": name, "executionForLatestMaterialization": execution}

    rate = {"label": "docs_per_second", "floatValue": 812.5}
    return {
        "assetNodes": [
            node(["couchdb", "medic"], "couchdb", None, []),
            node(["raw", "medic"], "raw", "HEALTHY", [check("unstorable_characters", "SUCCEEDED", "WARN")]),
            node(["raw", "medic_sentinel"], "raw", "DEGRADED", []),
            node(
                ["contactviews", "contactview_hospital"],
                "contactviews",
                "WARNING",
                [check("unique_key", "FAILED"), check("parity", "SUCCEEDED"), check("never_ran", None)],
            ),
            node(["ops", "postgres_backup"], "ops", "UNKNOWN", [check("restores", "EXECUTION_FAILED", None)]),
        ],
        "assetsOrError": {
            "__typename": "AssetConnection",
            "nodes": [
                {
                    "key": {"path": ["raw", "medic"]},
                    "latestMaterializationTimestamp": NOW.timestamp() * 1000 - 90_000,
                },
                {"key": {"path": ["raw", "medic_sentinel"]}, "latestMaterializationTimestamp": None},
                {"key": {"path": ["gone", "asset"]}, "latestMaterializationTimestamp": 1.0},
            ],
        },
        "raw": [
            {"assetKey": {"path": ["raw", "medic"]}, "assetMaterializations": [{"metadataEntries": [rate]}]},
            {"assetKey": {"path": ["raw", "medic_sentinel"]}, "assetMaterializations": []},
        ],
        "failed_runs_0": {"__typename": "Runs", "count": 0},
        "failed_runs_1": {"__typename": "Runs", "count": 3},
    }


def test_the_graphql_answer_becomes_a_snapshot() -> None:
    snapshot = parse_snapshot(graphql_answer(), ["medic", "medic-sentinel"])
    assert set(snapshot.assets) == {
        "couchdb/medic",
        "raw/medic",
        "raw/medic_sentinel",
        "contactviews/contactview_hospital",
        "ops/postgres_backup",
    }
    medic = snapshot.assets["raw/medic"]
    assert medic.materialized_at == pytest.approx(NOW.timestamp() - 90)
    assert medic.freshness == "HEALTHY" and medic.group == "raw"
    assert snapshot.assets["contactviews/contactview_hospital"].checks == [
        CheckState("unique_key", True, "ERROR"),
        CheckState("parity", False, "ERROR"),
    ]
    assert snapshot.assets["ops/postgres_backup"].checks == [CheckState("restores", True, None)]
    assert snapshot.assets["couchdb/medic"].freshness is None
    assert snapshot.docs_per_second == {"medic": 812.5}
    assert snapshot.failed_runs == {"medic": 0, "medic-sentinel": 3}


def test_an_error_in_the_answer_makes_dagster_unavailable() -> None:
    answer = graphql_answer()
    answer["failed_runs_1"] = {"__typename": "PythonError", "message": "database is locked"}
    with pytest.raises(DagsterUnavailable, match="database is locked"):
        parse_snapshot(answer, ["medic", "medic-sentinel"])


def full_snapshot() -> Snapshot:
    progress = [
        Progress("medic", "1234-g1AAAAB", 0, NOW - timedelta(minutes=5), 5000),
        Progress("medic-sentinel", "77-g1AAAAC", 12, NOW - timedelta(hours=2), None),
    ]
    objects = [
        ObjectState("useview_task", "useviews", "incremental", 321, NOW - timedelta(minutes=1)),
        ObjectState("contactview_hospital", "contactviews", "view", None, NOW - timedelta(minutes=1)),
    ]
    assets = {
        "raw/medic": AssetState(
            "raw", "HEALTHY", NOW.timestamp() - 60, [CheckState("unstorable", False, "WARN")]
        ),
        "raw/medic_sentinel": AssetState("raw", "DEGRADED", None),
        "contactviews/contactview_hospital": AssetState(
            "contactviews", "WARNING", NOW.timestamp() - 600, [CheckState("unique_key", True, "ERROR")]
        ),
        "ops/postgres_backup": AssetState(
            "ops", "HEALTHY", NOW.timestamp() - 3600, [CheckState("restores", False, "ERROR")]
        ),
        "ops/couchdb_backup_medic_sentinel": AssetState(
            "ops", None, None, [CheckState("restores", True, "ERROR")]
        ),
    }
    dagster = DagsterSnapshot(assets, {"medic": 812.5}, {"medic": 0, "medic-sentinel": 3})
    backups = [
        NewestBackup("postgres", "cht_analytics", NOW - timedelta(hours=3), 1024),
        NewestBackup("postgres", "old_db", NOW - timedelta(days=9), 10),
        NewestBackup("couchdb", "medic-sentinel", NOW - timedelta(hours=1), 2048),
    ]
    return Snapshot(NOW.timestamp(), PostgresSnapshot(progress, objects), dagster, backups)


def test_sync_metrics_keep_cht_syncs_names_and_labels(tmp_path: Path) -> None:
    found = exposition(build_families(config(tmp_path), full_snapshot()))
    medic = {"db": "medic", "cht_instance": "cht.example.org"}
    sentinel = {"db": "medic-sentinel", "cht_instance": "cht.example.org"}
    assert value(found, "couch2pg_progress_sequence", **medic) == 1234
    assert value(found, "couch2pg_progress_sequence", **sentinel) == 77
    assert value(found, "couch2pg_progress_pending", **medic) == 0
    assert value(found, "couch2pg_progress_pending", **sentinel) == 12
    # medic synced a minute ago; sentinel's last write was 2 hours ago and Dagster has no success.
    assert value(found, "couch2pg_up", **medic) == 1
    assert value(found, "couch2pg_up", **sentinel) == 0
    assert value(found, "cht_sync_age_seconds", **medic) == pytest.approx(60)
    assert value(found, "cht_sync_age_seconds", **sentinel) is None
    assert value(found, "cht_sync_docs_per_second", **medic) == 812.5
    assert value(found, "cht_sync_failed_runs_total", **sentinel) == 3
    assert value(found, "cht_sync_failed_runs_total", **medic) == 0
    assert not any("secret" in str(labels) or "admin" in str(labels) for _, labels in found)


def test_asset_metrics(tmp_path: Path) -> None:
    found = exposition(build_families(config(tmp_path), full_snapshot()))
    hospital = {"asset": "contactviews/contactview_hospital", "group": "contactviews"}
    assert value(found, "cht_asset_materialization_age_seconds", **hospital) == pytest.approx(600)
    states = {
        state: value(found, "cht_asset_freshness_state", **hospital, state=state)
        for state in ("healthy", "warning", "degraded", "unknown", "not_applicable")
    }
    assert states == {"healthy": 0, "warning": 1, "degraded": 0, "unknown": 0, "not_applicable": 0}
    assert value(found, "cht_asset_check_failed", **hospital, check="unique_key", severity="ERROR") == 1
    medic = {"asset": "raw/medic", "group": "raw"}
    assert value(found, "cht_asset_check_failed", **medic, check="unstorable", severity="WARN") == 0
    assert value(found, "cht_asset_rows", **medic) == 5000
    assert value(found, "cht_asset_rows", asset="useviews/useview_task", group="useviews") == 321
    assert value(found, "cht_asset_rows", **hospital) is None  # views are never counted
    assert value(found, "cht_asset_rows", asset="raw/medic_sentinel", group="raw") is None


def test_backup_metrics_join_the_files_with_their_restore_checks(tmp_path: Path) -> None:
    found = exposition(build_families(config(tmp_path), full_snapshot()))
    pg = {"kind": "postgres", "database": "cht_analytics"}
    sentinel = {"kind": "couchdb", "database": "medic-sentinel"}
    assert value(found, "cht_backup_age_seconds", **pg) == pytest.approx(3 * 3600)
    assert value(found, "cht_backup_size_bytes", **sentinel) == 2048
    assert value(found, "cht_backup_restore_check_passed", **pg) == 1
    assert value(found, "cht_backup_restore_check_passed", **sentinel) == 0
    # A dump of a database no asset backs up any more: its age, and no check result.
    assert value(found, "cht_backup_age_seconds", kind="postgres", database="old_db") == pytest.approx(
        9 * 86400
    )
    assert value(found, "cht_backup_restore_check_passed", kind="postgres", database="old_db") is None


def test_without_dagster_the_sync_metrics_come_from_postgresql_alone(tmp_path: Path) -> None:
    snapshot = full_snapshot()
    found = exposition(
        build_families(config(tmp_path), Snapshot(snapshot.now, snapshot.postgres, None, None))
    )
    medic = {"db": "medic", "cht_instance": "cht.example.org"}
    assert value(found, "couch2pg_progress_sequence", **medic) == 1234
    assert value(found, "couch2pg_up", **medic) == 1  # its checkpoint moved 5 minutes ago
    assert value(found, "cht_sync_age_seconds", **medic) is None
    assert value(found, "cht_asset_rows", asset="raw/medic", group="raw") == 5000
    assert not any(name.startswith(("cht_backup", "cht_asset_check")) for name, _ in found)


def test_the_newest_complete_backup_of_each_database(tmp_path: Path) -> None:
    medic = tmp_path / "couchdb" / "medic"
    medic.mkdir(parents=True)
    older, newer = NOW - timedelta(days=1), NOW - timedelta(hours=1)
    (medic / f"{stamp(older)}.ndjson.gz").write_bytes(b"x" * 10)
    (medic / f"{stamp(newer)}.ndjson.gz").write_bytes(b"x" * 20)
    partial(medic / f"{stamp(NOW)}.ndjson.gz").write_bytes(b"being written")
    (tmp_path / "postgres" / "cht_analytics").mkdir(parents=True)  # no dump yet
    assert read_backups(tmp_path) == [NewestBackup("couchdb", "medic", newer, 20)]
    assert read_backups(tmp_path / "missing") == []


def test_a_scrape_with_every_server_unreachable_still_answers(tmp_path: Path) -> None:
    closed = free_port()
    unreachable = config(
        tmp_path,
        postgres_url=f"postgresql://metrics:secret@127.0.0.1:{closed}/cht_analytics",
        webserver_url=f"http://127.0.0.1:{closed}",
    )
    registry = CollectorRegistry()
    registry.register(ChtCollector(unreachable))
    found = samples(generate_latest(registry).decode())
    assert value(found, "cht_up", source="postgres") == 0
    assert value(found, "cht_up", source="dagster") == 0
    assert value(found, "cht_up", source="backups") == 1
    assert not [name for name, _ in found if name.startswith("couch2pg_")]
