"""Replicate CouchDB databases into PostgreSQL without Dagster (ops, benchmarks, tests).

    python -m cht_assets.replica [--db medic] [--batch-size 5000]

Reads COUCHDB_URL, COUCHDB_DBS and POSTGRES_URL like the Dagster assets do.
"""

from __future__ import annotations

import argparse
import sys

from cht_assets.couch.client import CouchClient
from cht_assets.replica.replicate import SyncProgress, replicate_database
from cht_assets.settings import load_settings


def print_progress(progress: SyncProgress) -> None:
    print(
        f"{progress.source}: {progress.changes} changes, {progress.written} written, "
        f"{progress.changes_per_second:.0f} docs/s, seq {progress.last_seq[:24]}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", action="append", help="database to replicate (default: COUCHDB_DBS)")
    parser.add_argument("--batch-size", type=int, default=settings.couchdb_batch_size)
    args = parser.parse_args(argv)
    for db in args.db or settings.couchdb_dbs:
        replicate_database(
            settings.postgres_url,
            CouchClient(settings.couchdb_url, db),
            source=db,
            all_sources=settings.couchdb_dbs,
            batch_size=args.batch_size,
            on_batch=print_progress,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
