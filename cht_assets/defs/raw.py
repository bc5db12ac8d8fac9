"""CouchDB databases (external assets) and their raw replicas in PostgreSQL (one asset each)."""

import re
import time

import dagster as dg

from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.replica.replicate import SyncProgress, replicate_database
from cht_assets.replica.schema import DOCS_TABLE, RAW_SCHEMA
from cht_assets.settings import load_settings

PROGRESS_LOG_SECONDS = 5.0
CLEANED_CHECK = "unstorable_characters"


# On an asset reading a replica: the raw docs it reads (an object's `-- raw_docs:` filter), for
# the update_seq sensor to tell which assets a change reaches (cht_assets.warehouse.reach);
# absent: every doc.
RAW_DOCS_METADATA = "cht/raw_docs"
# On an asset that documents the views' structure (forms, languages, columns), not their rows
# (the data dictionary page): no change of docs reaches it; it follows runs of every view.
STRUCTURE_ONLY_TAG = "cht/structure_only"


def asset_name(db: str) -> str:
    """`medic-sentinel` -> `medic_sentinel`: Dagster names allow letters, digits and `_`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", db)


def couchdb_asset_key(db: str) -> dg.AssetKey:
    return dg.AssetKey(["couchdb", asset_name(db)])


def raw_asset_key(db: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", asset_name(db)])


def couchdb_source(db: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        couchdb_asset_key(db),
        group_name="couchdb",
        kinds={"couchdb"},
        description=f"The CouchDB database `{db}` of the CHT instance (COUCHDB_URL).",
    )


def describe(progress: SyncProgress) -> str:
    pending = "?" if progress.pending is None else f"{progress.pending:,}"
    eta = progress.eta_seconds
    return (
        f"{progress.source}: {progress.changes:,} changes ({progress.written:,} written, "
        f"{progress.deleted:,} deletes) in {progress.seconds:.1f}s, {progress.changes_per_second:,.0f} docs/s, "
        f"pending {pending}" + (f", ETA {eta:.0f}s" if eta is not None else "")
    )


def replication_asset(db: str, all_dbs: tuple[str, ...], batch_size: int) -> dg.AssetsDefinition:
    @dg.asset(
        key=raw_asset_key(db),
        deps=[couchdb_asset_key(db)],
        group_name="raw",
        kinds={"postgres", "couchdb"},
        description=(
            f"Raw jsonb replica of CouchDB `{db}` in `{RAW_SCHEMA}.{DOCS_TABLE}` (source = '{db}'), "
            "incremental from the _changes feed: winning revisions, conflicts recorded, deletes kept "
            "as tombstones."
        ),
        metadata={"dagster/table_name": f"{RAW_SCHEMA}.{DOCS_TABLE}", "source": db},
        check_specs=[
            dg.AssetCheckSpec(
                CLEANED_CHECK,
                asset=raw_asset_key(db),
                description=(
                    "Docs of this run holding characters jsonb cannot store (\\u0000, lone UTF-16 "
                    "surrogates): stored with U+FFFD in their place."
                ),
            )
        ],
    )
    def replicate(
        context: dg.AssetExecutionContext, couchdb: CouchDBResource, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        last_log = time.monotonic()

        def on_batch(progress: SyncProgress) -> None:
            nonlocal last_log
            if time.monotonic() - last_log >= PROGRESS_LOG_SECONDS:
                context.log.info(describe(progress))
                last_log = time.monotonic()

        def on_retry(attempt: int, error: Exception, delay: float) -> None:
            context.log.warning(f"{db}: attempt {attempt} failed ({error}); retrying in {delay:.0f}s")

        started = time.monotonic()
        result = replicate_database(
            postgres.conninfo,
            couchdb.client(db),
            source=db,
            all_sources=all_dbs,
            batch_size=batch_size,
            on_batch=on_batch,
            on_retry=on_retry,
        )
        progress = result.progress
        if result.absent:
            context.log.warning(f"{db}: nothing replicated, {result.absent}")
        context.log.info(describe(progress))
        if progress.cleaned:
            context.log.warning(
                f"{db}: {progress.cleaned} docs had characters replaced (e.g. {progress.cleaned_examples[:3]})"
            )
        cleaned = dg.AssetCheckResult(
            check_name=CLEANED_CHECK,
            passed=progress.cleaned == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "count": progress.cleaned,
                "examples": dg.MetadataValue.json(progress.cleaned_examples),
            },
        )
        return dg.MaterializeResult(
            check_results=[cleaned],
            metadata={
                "dagster/row_count": result.row_count,
                "dagster/table_name": f"{RAW_SCHEMA}.{DOCS_TABLE}",
                "live_docs": result.live_count,
                "tombstones": result.row_count - result.live_count,
                "changes_this_run": progress.changes,
                "rows_written": progress.written,
                "docs_cleaned": progress.cleaned,
                "docs_per_second": round(progress.changes_per_second, 1),
                "last_seq": progress.last_seq,
                "pending": progress.pending if progress.pending is not None else -1,
                "duration_seconds": round(time.monotonic() - started, 3),
                **({"absent": result.absent} if result.absent else {}),
            },
        )

    return replicate


def build_raw_assets() -> list[dg.AssetSpec | dg.AssetsDefinition]:
    settings = load_settings()
    dbs = settings.couchdb_dbs
    sources = [couchdb_source(db) for db in dbs]
    replicas = [replication_asset(db, dbs, settings.couchdb_batch_size) for db in dbs]
    return [*sources, *replicas]
