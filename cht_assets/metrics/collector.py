"""The prometheus_client Collector: on each scrape, reads every source (at the same time, each
with its own timeouts) and turns what answered into metric families. A source that fails is
exported as `cht_up{source=...} 0` and its metrics are left out; the others are served.

Names: cht-sync's `couch2pg_progress_sequence`, `couch2pg_progress_pending` and `couch2pg_up`
(labels `db`, `cht_instance`) for CHT Watchdog's panels; the rest under `cht_`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cht_assets.alerts.message import redact
from cht_assets.metrics.backups import NewestBackup, read_backups
from cht_assets.metrics.dagster import DagsterSnapshot, dagster_name, raw_key, read_dagster
from cht_assets.metrics.postgres import PostgresSnapshot, read_postgres, seq_number

log = logging.getLogger(__name__)

SOURCES = ("postgres", "dagster", "backups")
FRESHNESS_STATES = ("healthy", "warning", "degraded", "unknown", "not_applicable")
SYNC_LABELS = ["db", "cht_instance"]
ASSET_LABELS = ["asset", "group"]
BACKUP_LABELS = ["kind", "database"]
RESTORE_CHECK = "restores"


@dataclass(frozen=True)
class MetricsConfig:
    postgres_url: str = field(repr=False)
    couchdb_url: str = field(repr=False)  # only its host name is exported
    dbs: tuple[str, ...]
    webserver_url: str
    backup_dir: Path
    sync_window_seconds: float  # couch2pg_up: a successful sync at most this long ago

    @property
    def cht_instance(self) -> str:
        """The CouchDB host, as cht-sync's `source` names it (`<host>/<db>`, no port)."""
        return urlsplit(self.couchdb_url).hostname or ""

    @property
    def postgres_db(self) -> str:
        return psycopg.conninfo.conninfo_to_dict(self.postgres_url).get("dbname") or "postgres"


@dataclass(frozen=True)
class Reading:
    """What one source gave on this scrape: None when it failed."""

    value: Any
    seconds: float


@dataclass(frozen=True)
class Snapshot:
    now: float
    postgres: PostgresSnapshot | None
    dagster: DagsterSnapshot | None
    backups: list[NewestBackup] | None


class ChtCollector(Collector):
    def __init__(self, config: MetricsConfig) -> None:
        self.config = config
        self.down: set[str] = set()
        self.lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        readers: dict[str, Callable[[], Any]] = {
            "postgres": lambda: read_postgres(self.config.postgres_url),
            "dagster": lambda: read_dagster(self.config.webserver_url, self.config.dbs),
            "backups": lambda: read_backups(self.config.backup_dir),
        }
        with ThreadPoolExecutor(len(readers)) as pool:
            futures = {source: pool.submit(self.read, source, reader) for source, reader in readers.items()}
            readings = {source: future.result() for source, future in futures.items()}
        snapshot = Snapshot(now, *(readings[source].value for source in SOURCES))
        yield from build_families(self.config, snapshot)
        yield from source_families(readings)

    def read(self, source: str, reader: Callable[[], Any]) -> Reading:
        started = time.monotonic()
        try:
            value = reader()
        except Exception as exc:  # any failure of one source must leave the others served
            self.mark(source, redact(f"{type(exc).__name__}: {exc}"))
            return Reading(None, time.monotonic() - started)
        self.mark(source, None)
        return Reading(value, time.monotonic() - started)

    def mark(self, source: str, error: str | None) -> None:
        """Log a source going down or coming back once, not on every scrape."""
        with self.lock:
            if error is not None and source not in self.down:
                self.down.add(source)
                log.warning("%s unavailable: %s", source, error)
            elif error is None and source in self.down:
                self.down.discard(source)
                log.info("%s available again", source)


def source_families(readings: dict[str, Reading]) -> list[Metric]:
    up = GaugeMetricFamily("cht_up", "1 if the source answered this scrape, 0 if not", labels=["source"])
    seconds = GaugeMetricFamily(
        "cht_source_read_seconds", "Time this scrape took to read the source", labels=["source"]
    )
    for source, reading in readings.items():
        up.add_metric([source], 0 if reading.value is None else 1)
        seconds.add_metric([source], reading.seconds)
    return [up, seconds]


def build_families(config: MetricsConfig, snapshot: Snapshot) -> list[Metric]:
    return [
        *sync_families(config, snapshot),
        *asset_families(snapshot),
        *backup_families(config, snapshot),
    ]


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def sync_families(config: MetricsConfig, snapshot: Snapshot) -> list[Metric]:
    sequence = GaugeMetricFamily(
        "couch2pg_progress_sequence",
        "Numeric prefix of the last CouchDB seq replicated (as cht-sync)",
        labels=SYNC_LABELS,
    )
    pending = GaugeMetricFamily(
        "couch2pg_progress_pending",
        "Approximate number of changes left to sync from CouchDB, as of the last sync",
        labels=SYNC_LABELS,
    )
    up = GaugeMetricFamily(
        "couch2pg_up",
        "1 if the database was synced successfully within the raw freshness window (FRESHNESS_RAW_MINUTES), 0 if not",
        labels=SYNC_LABELS,
    )
    age = GaugeMetricFamily(
        "cht_sync_age_seconds", "Seconds since the last successful sync of the database", labels=SYNC_LABELS
    )
    rate = GaugeMetricFamily(
        "cht_sync_docs_per_second", "Changes per second of the last successful sync", labels=SYNC_LABELS
    )
    failed = CounterMetricFamily(
        "cht_sync_failed_runs", "Failed sync runs of the database (tagged cht/couchdb_db)", labels=SYNC_LABELS
    )
    # The last sync known to have written (PostgreSQL) or succeeded (Dagster), per database.
    last_sync: dict[str, float] = {}
    if snapshot.postgres is not None:
        for row in snapshot.postgres.progress:
            labels = [row.source, config.cht_instance]
            number = seq_number(row.seq)
            if number is not None:
                sequence.add_metric(labels, number)
            if row.pending is not None:
                pending.add_metric(labels, row.pending)
            last_sync[row.source] = epoch(row.updated_at)
    if snapshot.dagster is not None:
        for db in config.dbs:
            labels = [db, config.cht_instance]
            asset = snapshot.dagster.assets.get(raw_key(db))
            if asset is not None and asset.materialized_at is not None:
                age.add_metric(labels, snapshot.now - asset.materialized_at)
                last_sync[db] = max(last_sync.get(db, 0.0), asset.materialized_at)
            if db in snapshot.dagster.docs_per_second:
                rate.add_metric(labels, snapshot.dagster.docs_per_second[db])
            failed.add_metric(labels, snapshot.dagster.failed_runs.get(db, 0))
    if snapshot.postgres is not None or snapshot.dagster is not None:
        for db in sorted({*config.dbs, *last_sync}):
            synced = last_sync.get(db)
            fresh = synced is not None and snapshot.now - synced <= config.sync_window_seconds
            up.add_metric([db, config.cht_instance], 1 if fresh else 0)
    return [sequence, pending, up, age, rate, failed]


def asset_families(snapshot: Snapshot) -> list[Metric]:
    age = GaugeMetricFamily(
        "cht_asset_materialization_age_seconds",
        "Seconds since the asset's last materialization",
        labels=ASSET_LABELS,
    )
    freshness = GaugeMetricFamily(
        "cht_asset_freshness_state",
        "1 for the asset's current freshness state (Dagster's health: healthy, warning, degraded, unknown)",
        labels=[*ASSET_LABELS, "state"],
    )
    check = GaugeMetricFamily(
        "cht_asset_check_failed",
        "1 if the check failed on the asset's latest materialization, 0 if it passed",
        labels=[*ASSET_LABELS, "check", "severity"],
    )
    rows = GaugeMetricFamily(
        "cht_asset_rows",
        "Rows of the asset's table: raw replicas (tombstones included) and incremental view-layer tables",
        labels=ASSET_LABELS,
    )
    if snapshot.dagster is not None:
        for key, asset in sorted(snapshot.dagster.assets.items()):
            labels = [key, asset.group]
            if asset.materialized_at is not None:
                age.add_metric(labels, snapshot.now - asset.materialized_at)
            if asset.freshness is not None:
                for state in FRESHNESS_STATES:
                    freshness.add_metric([*labels, state], 1 if asset.freshness.lower() == state else 0)
            for result in asset.checks:
                check.add_metric([*labels, result.name, result.severity or ""], 1 if result.failed else 0)
    if snapshot.postgres is not None:
        for row in snapshot.postgres.progress:
            if row.docs is not None:
                rows.add_metric([raw_key(row.source), "raw"], row.docs)
        for obj in snapshot.postgres.objects:
            if obj.row_count is not None:
                rows.add_metric([f"{obj.layer}/{obj.name}", obj.layer], obj.row_count)
    return [age, freshness, check, rows]


def backup_asset_key(config: MetricsConfig, backup: NewestBackup) -> str | None:
    """The Dagster asset that wrote the backup (cht_assets.defs.backups), whose `restores` check
    tests it; None for a directory no current asset writes to."""
    if backup.kind == "postgres":
        return "ops/postgres_backup" if backup.database == config.postgres_db else None
    return f"ops/couchdb_backup_{dagster_name(backup.database)}"


def backup_families(config: MetricsConfig, snapshot: Snapshot) -> list[Metric]:
    age = GaugeMetricFamily(
        "cht_backup_age_seconds", "Seconds since the newest complete backup was taken", labels=BACKUP_LABELS
    )
    size = GaugeMetricFamily("cht_backup_size_bytes", "Size of the newest backup", labels=BACKUP_LABELS)
    restores = GaugeMetricFamily(
        "cht_backup_restore_check_passed",
        "1 if the restore drill (check `restores`) of the latest backup passed, 0 if it failed",
        labels=BACKUP_LABELS,
    )
    for backup in snapshot.backups or []:
        labels = [backup.kind, backup.database]
        age.add_metric(labels, snapshot.now - epoch(backup.taken_at))
        size.add_metric(labels, backup.bytes)
        key = backup_asset_key(config, backup)
        asset = snapshot.dagster.assets.get(key) if snapshot.dagster is not None and key else None
        for result in asset.checks if asset is not None else []:
            if result.name == RESTORE_CHECK:
                restores.add_metric(labels, 0 if result.failed else 1)
    return [age, size, restores]
