"""Replication benchmark: what pouchdb-server can serve vs. what our sync achieves, side by side.

For a CouchDB database of ~100 000 and one of ~400 000 generated CHT docs, in one run:
  (a) raw read rate of `_changes?include_docs=true` with our batch size, streamed and discarded
      (measured before and after the sync; the mean is used),
  (b) our initial sync rate into PostgreSQL (a fresh database each time),
  (c) b / a (target >= 0.8),
  (d) peak RSS of the sync process at 100k and 400k docs and their ratio (targets < 300 MB, <= 1.1).

    .venv/bin/python bench/replication.py [--docs 100000 400000] [--batch-size 5000]

Uses POSTGRES_URL when set (an admin URL), else an embedded PostgreSQL 18; always a fresh
pouchdb-server. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from cht_assets.couch.client import CouchClient
from cht_assets.demo.generator import MEDIC, generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.replica.replicate import replicate_database
from cht_assets.servers.couchdb import start_pouchdb_server
from cht_assets.servers.postgres import start_embedded_postgres

SEED = 20261125


def households_for(docs: int) -> int:
    """Households whose deployment puts about `docs` docs into the main (medic) database."""
    per_household = generate(SEED, 1000).estimate_counts()[MEDIC] / 1000
    # The estimate comes from a sample of small deployments and runs low by ~15 %: aim above.
    return max(1, round(1.2 * docs / per_household))


def raw_read(client: CouchClient, batch_size: int) -> tuple[int, float]:
    """Stream every `_changes` page and discard it: the ceiling for any replicator."""
    started, since, changes = time.monotonic(), "0", 0
    update_seq = str(client.db_info()["update_seq"])
    while since != update_seq:
        with client.changes(since, batch_size) as feed:
            for _ in feed.chunks():  # read, not parsed
                pass
        since = feed.last_seq
    changes = client.db_info()["doc_count"] + client.db_info().get("doc_del_count", 0)
    return changes, time.monotonic() - started


def child_sync(args: argparse.Namespace) -> None:
    result = replicate_database(
        args.pg_url,
        CouchClient(args.couch_url, args.db),
        source=args.db,
        all_sources=[args.db],
        batch_size=args.batch_size,
    )
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "changes": result.progress.changes,
                "seconds": result.progress.seconds,
                "peak_rss_mb": peak_kb / 1024,
            }
        )
    )


def fresh_database(admin_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(admin_url, dbname=name)


def measure_sync(couch_url: str, db: str, admin_url: str, batch_size: int) -> dict:
    command = [sys.executable, __file__, "--child", "--couch-url", couch_url, "--db", db,
               "--pg-url", fresh_database(admin_url), "--batch-size", str(batch_size)]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-replication-"))
    pg = None if os.environ.get("POSTGRES_URL") else start_embedded_postgres(workdir / "pg")
    admin_url = os.environ.get("POSTGRES_URL") or pg.url()
    couch = start_pouchdb_server(workdir / "couch")
    rows = []
    try:
        for target in args.docs:
            prefix = f"bench{target}"
            households = households_for(target)
            started = time.monotonic()
            load_deployment(couch_clients(couch.url), (SEED, households), db_prefix=prefix)
            client = CouchClient(couch.url, prefix)
            docs = client.db_info()["doc_count"]
            print(
                f"loaded {docs:,} docs into {prefix} ({households:,} households) in {time.monotonic() - started:.0f}s",
                flush=True,
            )
            read1 = raw_read(client, args.batch_size)
            synced = measure_sync(couch.url, prefix, admin_url, args.batch_size)
            read2 = raw_read(client, args.batch_size)
            raw_rate = (read1[0] / read1[1] + read2[0] / read2[1]) / 2
            sync_rate = synced["changes"] / synced["seconds"]
            rows.append((docs, raw_rate, sync_rate, synced["peak_rss_mb"]))
            print(
                f"  raw read {read1[0] / read1[1]:,.0f} / {read2[0] / read2[1]:,.0f} docs/s; sync {sync_rate:,.0f} docs/s; peak RSS {synced['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    finally:
        couch.stop()
        if pg:
            pg.stop()
    print(f"\nbatch size {args.batch_size}")
    print(f"{'docs':>9} {'(a) raw read/s':>15} {'(b) sync/s':>11} {'(c) b/a':>8} {'peak RSS MB':>12}")
    for docs, raw_rate, sync_rate, rss in rows:
        print(f"{docs:>9,} {raw_rate:>15,.0f} {sync_rate:>11,.0f} {sync_rate / raw_rate:>8.2f} {rss:>12.0f}")
    if len(rows) >= 2:
        print(f"(d) peak RSS ratio {rows[-1][0]:,} / {rows[0][0]:,} docs: {rows[-1][3] / rows[0][3]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000, 400_000])
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--couch-url", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--pg-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    child_sync(args) if args.child else run(args)


if __name__ == "__main__":
    main()
