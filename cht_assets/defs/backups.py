"""Backup assets (group `ops`), materialized by the daily_backups schedule, each with a restore drill.

    ops/postgres_backup            pg_dump -Fc of the analytics database   BACKUP_DIR/postgres/<db>/
    ops/couchdb_backup_<db>        every doc + attachments, gzip NDJSON    BACKUP_DIR/couchdb/<db>/

The newest BACKUP_KEEP of each are kept. The `restores` checks load the newest backup into a
scratch database (BACKUP_SCRATCH_POSTGRES_URL / BACKUP_SCRATCH_COUCHDB_URL, default the source
servers), compare row or doc counts with the backup's manifest, and drop the scratch database.
"""

from pathlib import Path

import dagster as dg
import psycopg

from cht_assets.backup import couchdb as couch_backup
from cht_assets.backup import postgres as pg_backup
from cht_assets.backup.files import backups, newest
from cht_assets.defs.raw import asset_name, couchdb_asset_key
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.settings import load_ops_settings, load_settings

GROUP = "ops"
POSTGRES_BACKUP_KEY = dg.AssetKey(["ops", "postgres_backup"])
CHECK_NAME = "restores"


def couchdb_backup_key(db: str) -> dg.AssetKey:
    return dg.AssetKey(["ops", f"couchdb_backup_{asset_name(db)}"])


def backup_root() -> Path:
    return Path(load_ops_settings().backup_dir).expanduser().resolve()


def postgres_dir(conninfo: str) -> Path:
    dbname = psycopg.conninfo.conninfo_to_dict(conninfo).get("dbname") or "postgres"
    return backup_root() / "postgres" / str(dbname)


def couchdb_dir(db: str) -> Path:
    return backup_root() / "couchdb" / db


def kept(directory: Path, suffix: str) -> dg.MetadataValue:
    return dg.MetadataValue.json([path.name for path in backups(directory, suffix)])


@dg.asset(
    key=POSTGRES_BACKUP_KEY,
    group_name=GROUP,
    kinds={"postgres"},
    description="pg_dump (custom format) of the analytics database into BACKUP_DIR; the newest BACKUP_KEEP kept.",
)
def postgres_backup(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    settings = load_ops_settings()
    directory = postgres_dir(postgres.conninfo)
    dump = pg_backup.dump_postgres(
        postgres.conninfo,
        directory,
        keep=settings.backup_keep,
        bin_dir=settings.pg_bin_dir,
        log=context.log.info,
    )
    context.log.info(
        f"{dump.path.name}: {dump.bytes:,} bytes, {dump.rows:,} rows in {len(dump.tables)} tables, "
        f"{dump.seconds:.1f}s; removed {len(dump.removed)} old dumps"
    )
    return dg.MaterializeResult(
        metadata={
            "path": str(dump.path),
            "bytes": dump.bytes,
            "tables": len(dump.tables),
            "rows": dump.rows,
            "pg_dump": f"{dump.tools.bin_dir / 'pg_dump'} (PostgreSQL {dump.tools.major})",
            "duration_seconds": round(dump.seconds, 3),
            "kept": kept(directory, pg_backup.SUFFIX),
        }
    )


@dg.asset_check(
    asset=POSTGRES_BACKUP_KEY,
    name=CHECK_NAME,
    description="Restores the newest dump into a scratch database and compares row counts per table.",
)
def postgres_backup_restores(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource
) -> dg.AssetCheckResult:
    settings = load_ops_settings()
    path = newest(postgres_dir(postgres.conninfo), pg_backup.SUFFIX)
    admin = settings.backup_scratch_postgres_url or postgres.conninfo
    drill = pg_backup.restore_drill(path, admin, bin_dir=settings.pg_bin_dir, log=context.log.info)
    differences = {name: {"dump": a, "restored": b} for name, (a, b) in drill.differences.items()}
    return dg.AssetCheckResult(
        passed=drill.ok,
        description=(
            f"{path.name}: {len(drill.restored)} tables, {sum(drill.restored.values()):,} rows restored"
            + ("" if drill.ok else f"; {len(differences)} tables differ")
        ),
        metadata={
            "dump": path.name,
            "tables": len(drill.expected),
            "rows_expected": sum(drill.expected.values()),
            "rows_restored": sum(drill.restored.values()),
            "differences": dg.MetadataValue.json(dict(list(differences.items())[:20])),
            "duration_seconds": round(drill.seconds, 3),
        },
    )


def couchdb_backup(db: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=couchdb_backup_key(db),
        deps=[couchdb_asset_key(db)],
        group_name=GROUP,
        kinds={"couchdb"},
        description=(
            f"Every live doc of CouchDB `{db}` with its attachments and conflicting revisions "
            "(gzip NDJSON) into BACKUP_DIR; the newest BACKUP_KEEP kept."
        ),
    )
    def couchdb_backup_asset(
        context: dg.AssetExecutionContext, couchdb: CouchDBResource
    ) -> dg.MaterializeResult:
        directory = couchdb_dir(db)
        dump = couch_backup.dump_couchdb(
            couchdb.client(db), directory, keep=load_ops_settings().backup_keep, log=context.log.info
        )
        context.log.info(
            f"{db}: {dump.docs:,} docs, {dump.conflict_revisions:,} conflicting revisions, "
            f"{dump.attachments:,} attachments, {dump.bytes:,} bytes in {dump.seconds:.1f}s"
        )
        return dg.MaterializeResult(
            metadata={
                "path": str(dump.path),
                "docs": dump.docs,
                "conflict_revisions": dump.conflict_revisions,
                "attachments": dump.attachments,
                "bytes": dump.bytes,
                "consistent": dump.source_doc_count is not None,
                "duration_seconds": round(dump.seconds, 3),
                "kept": kept(directory, couch_backup.SUFFIX),
            }
        )

    return couchdb_backup_asset


def couchdb_backup_check(db: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=couchdb_backup_key(db),
        name=CHECK_NAME,
        description="Loads the newest dump into a scratch CouchDB database and compares doc counts.",
    )
    def couchdb_backup_restores(
        context: dg.AssetCheckExecutionContext, couchdb: CouchDBResource
    ) -> dg.AssetCheckResult:
        path = newest(couchdb_dir(db), couch_backup.SUFFIX)
        server = load_ops_settings().backup_scratch_couchdb_url or couchdb.url or load_settings().couchdb_url
        drill = couch_backup.restore_drill(path, server, db, log=context.log.info)
        return dg.AssetCheckResult(
            passed=drill.ok,
            description=(
                f"{path.name}: {drill.restored_docs:,} docs restored, {drill.expected_docs:,} in the dump"
                + (
                    f", {drill.source_doc_count:,} in CouchDB then"
                    if drill.source_doc_count is not None
                    else ""
                )
            ),
            metadata={
                "dump": path.name,
                "docs_in_dump": drill.expected_docs,
                "docs_restored": drill.restored_docs,
                "docs_in_couchdb_at_dump": drill.source_doc_count
                if drill.source_doc_count is not None
                else -1,
                "revisions_written": drill.revisions_written,
                "duration_seconds": round(drill.seconds, 3),
            },
        )

    return couchdb_backup_restores


def backup_assets(dbs: tuple[str, ...]) -> list[dg.AssetsDefinition]:
    return [postgres_backup, *(couchdb_backup(db) for db in dbs)]


def backup_checks(dbs: tuple[str, ...]) -> list[dg.AssetChecksDefinition]:
    return [postgres_backup_restores, *(couchdb_backup_check(db) for db in dbs)]
