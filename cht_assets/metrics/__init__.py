"""Prometheus metrics for the pipeline (`cht-metrics`): read on every scrape from PostgreSQL
(replication checkpoints, refresh state), the Dagster webserver's GraphQL API (materializations,
freshness, checks, failed runs) and BACKUP_DIR. No Dagster import: the webserver is the one
reader of the Dagster instance, as for the UI, so a scrape takes no lock on SQLite or PostgreSQL
storage that a run or the daemon waits for."""
