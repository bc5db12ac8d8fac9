"""Refresh the view layers without Dagster (ops, benchmarks, tests), in build order, with the
same checks as the Dagster assets.

    python -m cht_assets.warehouse [--select NAME ...]

Reads COUCHDB_URL, COUCHDB_DBS and POSTGRES_URL like the Dagster assets do; exits 1 when an
object failed or a blocking check did not pass (what depends on it is then not refreshed).
An object waiting for a form the deployment lacks is reported and skipped, not a failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection

import psycopg

from cht_assets.settings import load_settings
from cht_assets.warehouse import checks
from cht_assets.warehouse.catalog import (
    AbsentInput,
    ViewCatalog,
    deployment_catalog,
    refresh_entry,
)
from cht_assets.warehouse.comments import apply_comments
from cht_assets.warehouse.state import ensure_meta_schema


def refresh_catalog(
    conn: psycopg.Connection,
    catalog: ViewCatalog,
    selected: Collection[str] | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Refresh the selected objects (default: all) in order; per object its outcome: the
    refresh mode, `waiting`, `failed`, `blocked` (a blocking check failed) or `skipped` (an
    upstream object did not build)."""
    outcome: dict[str, str] = {}
    for entry in catalog:
        if selected is not None and entry.name not in selected:
            continue
        # An object that waits for absent forms says so, whatever its upstream did.
        bad_upstream = [
            dep
            for dep in entry.obj.depends_on
            if not entry.waiting_for and outcome.get(dep) in {"waiting", "failed", "blocked", "skipped"}
        ]
        if bad_upstream:
            outcome[entry.name] = "skipped"
            say(f"{entry.name}: skipped ({', '.join(bad_upstream)} not built)")
            continue
        try:
            built, result = refresh_entry(conn, catalog, entry.name)
        except AbsentInput as exc:
            outcome[entry.name] = "waiting"
            say(f"{entry.name}: not built, {exc}")
            continue
        except psycopg.Error as exc:
            outcome[entry.name] = "failed"
            say(f"{entry.name}: FAILED {type(exc).__name__}: {str(exc).strip()[:300]}")
            continue
        outcome[entry.name] = result.mode
        apply_comments(conn, built)
        rows = "" if result.row_count is None else f", {result.row_count:,} rows"
        say(f"{entry.name}: {result.mode} in {result.seconds:.2f}s{rows}")
        for found in checks.run_checks(conn, entry.obj, built, result):
            check, finding = found.check, found.finding
            if finding.count:
                say(f"  check {check.name} ({check.severity}): {finding.count} (e.g. {finding.examples[:3]})")
                if check.blocking and check.severity == checks.Severity.ERROR:
                    outcome[entry.name] = "blocked"
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--select", action="append", help="object to refresh (default: every object)")
    args = parser.parse_args(argv)
    settings = load_settings()
    catalog = deployment_catalog(settings)
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute("SET standard_conforming_strings = on")
        ensure_meta_schema(conn)
        outcome = refresh_catalog(conn, catalog, args.select)
    return 1 if {"failed", "blocked"} & set(outcome.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
