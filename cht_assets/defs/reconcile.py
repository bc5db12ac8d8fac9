"""Reconciliation of each raw replica with its CouchDB database (cht_assets.replica.reconcile).

`couchdb/<db>:matches_couchdb` lists docs missing from the replica and rows CouchDB no longer
has (purged). It reads every id of `_all_docs`, a cost that grows with the database, so it runs
only when asked: daily (schedule `daily_reconciliation`, RECONCILE_CRON), from its asset's Checks
tab, or as the job `reconcile_replicas`. It is a check of the external CouchDB asset, not of the
replica's asset, because Dagster runs every check of an asset with each materialization of it:
"Materialize all", `dagster asset materialize --select '*'` and the update_seq sensor would all
pay for it. The replica is its additional dependency, so lineage still shows what it reads.

It never changes anything: the `repair_replica` job does, when someone launches it (Launchpad:
`ops: {reconcile_and_repair: {config: {databases: [medic]}}}`), and records a materialization of
each raw asset it changed so the views follow.
"""

import dagster as dg

from cht_assets.defs.raw import couchdb_asset_key, raw_asset_key
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.replica.reconcile import EXAMPLES, ReconcileError, Reconciliation, reconcile, repair
from cht_assets.settings import load_settings

CHECK_NAME = "matches_couchdb"
REPAIR_JOB = "repair_replica"
RECONCILE_JOB = "reconcile_replicas"


def reconcile_check_keys(dbs: tuple[str, ...]) -> list[dg.AssetCheckKey]:
    return [dg.AssetCheckKey(couchdb_asset_key(db), CHECK_NAME) for db in dbs]


def reconciliation_metadata(found: Reconciliation) -> dict[str, object]:
    return {
        "couchdb_docs": found.couch_docs,
        "raw_live_rows": found.raw_live,
        "missing": len(found.missing),
        "extra": len(found.extra),
        "missing_examples": dg.MetadataValue.json(found.missing[:EXAMPLES]),
        "extra_examples": dg.MetadataValue.json(found.extra[:EXAMPLES]),
        "pending_changes_set_aside": found.pending_changes,
        "duration_seconds": round(found.seconds, 3),
    }


def reconcile_check(db: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=couchdb_asset_key(db),
        name=CHECK_NAME,
        additional_deps=[raw_asset_key(db)],
        blocking=False,
        description=(
            f"Every id of CouchDB `{db}` (_all_docs) against the live rows of its replica "
            f"`{raw_asset_key(db).to_user_string()}`: docs missing from it, rows purged from CouchDB. "
            f"Daily, or when launched (job {RECONCILE_JOB}); fix with the {REPAIR_JOB} job."
        ),
    )
    def matches_couchdb(couchdb: CouchDBResource, postgres: PostgresResource) -> dg.AssetCheckResult:
        try:
            found = reconcile(postgres.conninfo, couchdb.client(db), db)
        except ReconcileError as exc:
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.WARN, description=f"inconclusive: {exc}"
            )
        return dg.AssetCheckResult(
            passed=found.ok,
            severity=dg.AssetCheckSeverity.ERROR,
            description=found.summary(),
            metadata=reconciliation_metadata(found),
        )

    return matches_couchdb


def reconcile_checks(dbs: tuple[str, ...]) -> list[dg.AssetChecksDefinition]:
    return [reconcile_check(db) for db in dbs]


def configured_databases(wanted: list[str]) -> tuple[str, ...]:
    """`wanted`, all of them among COUCHDB_DBS (else the op fails naming the others); empty: all."""
    known = load_settings().couchdb_dbs
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise dg.Failure(f"not among COUCHDB_DBS: {unknown}")
    return tuple(wanted) or known


class RepairConfig(dg.Config):
    databases: list[str] = []  # CouchDB database names; empty: every database of COUCHDB_DBS
    force: bool = False  # tombstone even when more than 10% of the live rows are not in CouchDB


@dg.op(description="Re-fetches docs missing from the replica and marks rows purged from CouchDB as deleted.")
def reconcile_and_repair(
    context: dg.OpExecutionContext, config: RepairConfig, couchdb: CouchDBResource, postgres: PostgresResource
) -> None:
    for db in configured_databases(config.databases):
        try:
            found, done = repair(
                postgres.conninfo, couchdb.client(db), db, force=config.force, log=context.log.info
            )
        except ReconcileError as exc:
            raise dg.Failure(str(exc)) from None
        context.log.info(found.summary())
        if not done.changed:
            continue
        context.log.info(
            f"{db}: re-fetched {done.fetched:,} docs ({done.gone:,} gone meanwhile), "
            f"marked {done.tombstoned:,} rows deleted"
        )
        context.log_event(
            dg.AssetMaterialization(
                asset_key=raw_asset_key(db),
                description=f"repair_replica: {done.fetched} docs re-fetched, {done.tombstoned} rows marked deleted",
                metadata={
                    "repaired_missing": done.fetched,
                    "repaired_extra": done.tombstoned,
                    "fetched_examples": dg.MetadataValue.json(done.fetched_ids[:EXAMPLES]),
                    "tombstoned_examples": dg.MetadataValue.json(done.tombstoned_ids[:EXAMPLES]),
                },
            )
        )


def repair_job() -> dg.JobDefinition:
    @dg.job(name=REPAIR_JOB, description="Fixes what the matches_couchdb checks found; only when launched.")
    def repair_replica_job() -> None:
        reconcile_and_repair()

    return repair_replica_job
