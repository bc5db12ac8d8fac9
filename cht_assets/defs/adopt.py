"""The `adopt_replica` job: takes over a cht-couch2pg or cht-sync database as the raw replica
(cht_assets.replica.adopt), only when launched. Launchpad:

    ops: {adopt: {config: {layout: couch2pg, from_url_env: COUCH2PG_POSTGRES_URL, source_schema: couch2pg}}}

The old database's URL may hold a password, so the config names the environment variable that
holds it (none: the analytics database itself) and the URL never enters run config or logs.
Records a materialization of each raw asset adopted, so the views follow.
"""

import dagster as dg

from cht_assets.defs.raw import raw_asset_key
from cht_assets.defs.reconcile import configured_databases
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.replica.adopt import DEFAULT_SCHEMAS, DEFAULT_TABLE, AdoptError, Layout, OldReplica, adopt
from cht_assets.replica.reconcile import EXAMPLES
from cht_assets.settings import load_settings, named_secret

ADOPT_JOB = "adopt_replica"


class AdoptConfig(dg.Config):
    layout: str  # couch2pg or cht-sync
    from_url_env: str = ""  # variable holding the old database's URL; empty: POSTGRES_URL's database
    source_schema: str = ""  # the old tables' schema; empty: public (couch2pg) or v1 (cht-sync)
    source_table: str = DEFAULT_TABLE
    databases: list[str] = []  # CouchDB database names; empty: every database of COUCHDB_DBS
    force: bool = False  # adopt into a replica that already holds rows of these databases


def old_replica(config: AdoptConfig) -> OldReplica:
    if config.layout not in set(Layout):
        raise dg.Failure(
            f"layout must be one of {[layout.value for layout in Layout]}, not {config.layout!r}"
        )
    layout = Layout(config.layout)
    url = None
    if config.from_url_env:
        url = named_secret(config.from_url_env)
        if url is None:
            raise dg.Failure(f"environment variable {config.from_url_env} is not set")
    schema = config.source_schema or DEFAULT_SCHEMAS[layout]
    return OldReplica(layout, schema, config.source_table, url)


@dg.op(
    name="adopt",
    description="Adopts a cht-couch2pg or cht-sync database as the raw replica, then syncs and reconciles it.",
)
def adopt_old_replica(
    context: dg.OpExecutionContext, config: AdoptConfig, couchdb: CouchDBResource, postgres: PostgresResource
) -> None:
    try:
        result = adopt(
            postgres.conninfo,
            old_replica(config),
            couchdb.client,
            configured_databases(config.databases),
            all_sources=load_settings().couchdb_dbs,
            force=config.force,
            log=context.log.info,
        )
    except AdoptError as exc:
        raise dg.Failure(str(exc)) from None
    if result.absent:
        context.log.info(
            f"not in the old database (the next sync reads them from the start): {result.absent}"
        )
    for done in result.adopted:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=raw_asset_key(done.source),
                description=f"adopt_replica: {done.rows:,} rows of {done.old_source} adopted",
                metadata={
                    "adopted_rows": done.rows,
                    "adopted_live_rows": done.live_rows,
                    "adopted_seq": done.seq,
                    "forms": done.forms,
                    "changes_synced_after": done.caught_up,
                    "repaired_missing": done.repaired.fetched,
                    "repaired_extra": done.repaired.tombstoned,
                    "fetched_examples": dg.MetadataValue.json(done.repaired.fetched_ids[:EXAMPLES]),
                    "duration_seconds": round(result.seconds, 3),
                },
            )
        )


def adopt_job() -> dg.JobDefinition:
    @dg.job(name=ADOPT_JOB, description="Takes over a cht-couch2pg or cht-sync database; only when launched.")
    def adopt_replica() -> None:
        adopt_old_replica()

    return adopt_replica
