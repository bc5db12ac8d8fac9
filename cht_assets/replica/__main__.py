"""Replicate CouchDB databases into PostgreSQL without Dagster (ops, benchmarks, tests).

    python -m cht_assets.replica [--db medic] [--batch-size 5000]
    python -m cht_assets.replica adopt --layout couch2pg|cht-sync [--from-url URL]
        [--schema S] [--table T] [--db medic] [--force]

`adopt` takes over the raw tables of cht-couch2pg or cht-sync (in this database, or in the one
at --from-url; a password there may come from ~/.pgpass) instead of reading every doc again,
then syncs and reconciles each database (cht_assets.replica.adopt).
Reads COUCHDB_URL, COUCHDB_DBS and POSTGRES_URL like the Dagster assets do.
"""

from __future__ import annotations

import argparse
import sys

from cht_assets.couch.client import CouchClient
from cht_assets.replica.adopt import DEFAULT_SCHEMAS, DEFAULT_TABLE, AdoptError, Layout, OldReplica, adopt
from cht_assets.replica.replicate import SyncProgress, replicate_database
from cht_assets.settings import Settings, load_settings


def print_progress(progress: SyncProgress) -> None:
    print(
        f"{progress.source}: {progress.changes} changes, {progress.written} written, "
        f"{progress.changes_per_second:.0f} docs/s, seq {progress.last_seq[:24]}",
        flush=True,
    )


def say(message: str) -> None:
    print(message, flush=True)


def sync(args: argparse.Namespace, settings: Settings) -> int:
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


def adopt_old(args: argparse.Namespace, settings: Settings) -> int:
    layout = Layout(args.layout)
    old = OldReplica(layout, args.schema or DEFAULT_SCHEMAS[layout], args.table, args.from_url)
    try:
        result = adopt(
            settings.postgres_url,
            old,
            lambda db: CouchClient(settings.couchdb_url, db),
            args.db or settings.couchdb_dbs,
            all_sources=settings.couchdb_dbs,
            batch_size=args.batch_size,
            force=args.force,
            log=say,
        )
    except AdoptError as exc:
        print(f"not adopted: {exc}", file=sys.stderr)
        return 1
    for done in result.adopted:
        say(
            f"{done.source}: adopted {done.rows:,} rows ({done.live_rows:,} live) of {done.old_source}, "
            f"then {done.caught_up:,} newer changes synced, {done.repaired.fetched:,} missing docs fetched, "
            f"{done.repaired.tombstoned:,} rows CouchDB no longer has marked deleted"
        )
    if result.absent:
        say(f"not in the old database (the next sync reads them from the start): {result.absent}")
    if result.ignored:
        say(f"in the old database but not among the databases asked for: {result.ignored}")
    return 0


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", action="append", help="database to replicate (default: COUCHDB_DBS)")
    parser.add_argument("--batch-size", type=int, default=settings.couchdb_batch_size)
    parser.set_defaults(command=sync)
    commands = parser.add_subparsers(title="commands")
    adopting = commands.add_parser("adopt", help="adopt a cht-couch2pg or cht-sync database")
    adopting.set_defaults(command=adopt_old)
    adopting.add_argument("--layout", required=True, choices=[layout.value for layout in Layout])
    adopting.add_argument("--from-url", help="the old PostgreSQL database (default: POSTGRES_URL's)")
    adopting.add_argument("--schema", help="the old tables' schema (default: public, cht-sync: v1)")
    adopting.add_argument("--table", default=DEFAULT_TABLE, help="the old docs table (default: couchdb)")
    adopting.add_argument("--db", action="append", help="database to adopt (default: COUCHDB_DBS)")
    adopting.add_argument("--force", action="store_true", help="adopt into a replica that holds rows")
    args = parser.parse_args(argv)
    return args.command(args, settings)


if __name__ == "__main__":
    sys.exit(main())
