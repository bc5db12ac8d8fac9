"""``cht-demo-data``: generate a demo CHT deployment and load it into CouchDB.

    cht-demo-data --couchdb-url http://admin:pass@127.0.0.1:5984 --households 2000 --seed 1
    cht-demo-data --couchdb-url ... --households 2000 --seed 1 --mutation-rounds 1 --no-load
    cht-demo-data --households 10000 --seed 1 --dry-run        # generate and count only

Same ``--seed``/``--households`` always give the same documents and revisions, so loading twice
is harmless and ``--no-load --mutation-rounds N`` can be run later against an earlier load.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from cht_assets.demo.generator import DATABASES, MUTATION_ROUNDS, Deployment, generate
from cht_assets.demo.loader import (
    DEFAULT_CHUNK_SIZE,
    LoadReport,
    Progress,
    apply_mutations,
    couch_clients,
    database_name,
    load_deployment,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cht-demo-data",
        description="Generate a deterministic demo CHT deployment and load it into CouchDB.",
    )
    parser.add_argument("--couchdb-url", help="server URL, may carry user:password@")
    parser.add_argument("--households", type=int, required=True, help="number of households (~15 docs each)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--today",
        type=date.fromisoformat,
        default=date.today(),
        help="the deployment's today, YYYY-MM-DD: every date is relative to it (default: today;"
        " pass the load's date with --no-load --mutation-rounds on a later day)",
    )
    parser.add_argument("--db-prefix", default="medic", help="main database name (default medic)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="docs per _bulk_docs")
    parser.add_argument(
        "--mutation-rounds",
        type=int,
        default=0,
        choices=range(MUTATION_ROUNDS + 1),
        help="after loading, apply edit/delete/conflict rounds 1..N (default 0)",
    )
    parser.add_argument("--no-load", action="store_true", help="skip the initial load")
    parser.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout in seconds")
    parser.add_argument("--dry-run", action="store_true", help="generate and count, no CouchDB")
    return parser


def _redact(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _progress_printer(stream: TextIO | None = None, every_s: float = 1.0) -> Callable[[Progress], None]:
    out = stream or sys.stdout
    last = {"at": 0.0}

    def show(progress: Progress) -> None:
        now = time.monotonic()
        if now - last["at"] < every_s:
            return  # the summary printed at the end gives the final numbers
        last["at"] = now
        total = f"/~{progress.estimated_total:,}" if progress.estimated_total else ""
        eta = progress.eta_s
        tail = f", ETA {_duration(eta)}" if eta is not None else ""
        print(
            f"[{progress.phase}] {progress.docs:,}{total} docs, {progress.rate:,.0f} docs/s{tail}",
            file=out,
            flush=True,
        )

    return show


def _summary(report: LoadReport) -> None:
    print(f"{report.phase}: {report.written:,} docs in {_duration(report.seconds)}")
    for summary in report.databases.values():
        count = "?" if summary.doc_count is None else f"{summary.doc_count:,}"
        print(
            f"  {summary.name:<24} written {summary.written:>9,}  errors {summary.errors:>5,}"
            f"  doc_count {count:>9}"
        )
    for error in report.errors:
        print(f"  rejected: {error}", file=sys.stderr)


def _dry_run(deployment: Deployment, db_prefix: str) -> int:
    started = time.monotonic()
    counts: Counter[str] = Counter()
    for db, _ in deployment.iter_all():
        counts[db] += 1
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    print(f"generated {total:,} docs in {elapsed:.1f}s ({total / max(elapsed, 1e-9):,.0f} docs/s)")
    for db in DATABASES:
        print(f"  {database_name(db_prefix, db):<24} {counts[db]:>9,}")
    for round_no in range(1, MUTATION_ROUNDS + 1):
        kinds = Counter(m.kind for m in deployment.mutations(round_no))
        print(f"  mutation round {round_no}: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.households < 1:
        _parser().error("--households must be >= 1")
    deployment = generate(args.seed, args.households, args.today)
    if args.dry_run:
        return _dry_run(deployment, args.db_prefix)
    if not args.couchdb_url:
        _parser().error("--couchdb-url is required (or use --dry-run)")
    clients = couch_clients(args.couchdb_url, timeout=args.timeout)
    print(
        f"CHT demo deployment: seed {args.seed}, {args.households:,} households -> "
        f"{_redact(args.couchdb_url)} (databases {args.db_prefix}, {args.db_prefix}-sentinel, ...)",
        flush=True,
    )
    reports: list[LoadReport] = []
    if not args.no_load:
        reports.append(
            load_deployment(
                clients,
                deployment,
                db_prefix=args.db_prefix,
                chunk_size=args.chunk_size,
                progress=_progress_printer(),
            )
        )
        _summary(reports[-1])
    for round_no in range(1, args.mutation_rounds + 1):
        reports.append(
            apply_mutations(
                clients,
                deployment,
                round_no,
                db_prefix=args.db_prefix,
                chunk_size=args.chunk_size,
                progress=_progress_printer(),
            )
        )
        _summary(reports[-1])
    return 1 if any(report.error_count for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
