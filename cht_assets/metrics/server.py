"""`cht-metrics`: serves the pipeline's metrics in Prometheus text format on
http://METRICS_HOST:METRICS_PORT/metrics (default 127.0.0.1:9108) until SIGINT or SIGTERM.

Run it beside the Dagster webserver, with the pipeline's environment (POSTGRES_URL, COUCHDB_URL,
COUCHDB_DBS, DAGSTER_WEBSERVER_URL, BACKUP_DIR); every scrape reads them afresh."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from cht_assets.metrics.collector import ChtCollector, MetricsConfig
from cht_assets.settings import load_metrics_settings, load_ops_settings, load_settings


def metrics_config() -> MetricsConfig:
    settings, ops = load_settings(), load_ops_settings()
    return MetricsConfig(
        postgres_url=settings.postgres_url,
        couchdb_url=settings.couchdb_url,
        dbs=settings.couchdb_dbs,
        webserver_url=ops.dagster_webserver_url,
        backup_dir=Path(ops.backup_dir).expanduser().resolve(),
        sync_window_seconds=ops.freshness_raw_minutes * 60,
    )


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="cht-metrics", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s cht-metrics %(levelname)s %(message)s")
    listen = load_metrics_settings()
    registry = CollectorRegistry()
    registry.register(ChtCollector(metrics_config()))
    server, thread = start_http_server(listen.port, addr=listen.host, registry=registry)
    logging.info("serving http://%s:%s/metrics", listen.host, listen.port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(timeout=5)
    return 0
