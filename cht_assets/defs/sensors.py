"""What starts runs: CouchDB's update_seq for the raw replicas, automation conditions for the rest.

`couchdb_update_seq` polls each database's `update_seq` (GET /{db}, cheap) every
COUCHDB_POLL_SECONDS. When it moved, the database's replication asset runs (run_key
`<db>@<seq>`: one run per seq, however often the sensor looks) and the external CouchDB asset
gets an observation with the seq and the doc counts. A database whose replication is already
running waits for the next tick. `automation` evaluates every asset's automation condition
(cht_assets.defs.automation); both are on by default.
"""

import json
from typing import Any

import dagster as dg

from cht_assets.couch.errors import CouchError
from cht_assets.defs.raw import couchdb_asset_key, raw_asset_key
from cht_assets.defs.reconcile import CHECK_NAME as RECONCILE_CHECK
from cht_assets.defs.resources import CouchDBResource
from cht_assets.settings import OpsSettings

UPDATE_SEQ_SENSOR = "couchdb_update_seq"
AUTOMATION_SENSOR = "automation"
DB_TAG = "cht/couchdb_db"


def seq_text(seq: Any) -> str:
    """CouchDB 2+ sends an opaque string, PouchDB and CouchDB 1 a number."""
    return seq if isinstance(seq, str) else json.dumps(seq)


def in_progress(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The id of an unfinished run that plans to materialize `key`, if any."""
    records = instance.get_asset_records([key])
    if not records:
        return None
    entry = records[0].asset_entry
    # SQLite storage keeps only last_run_id (set when a run plans the asset, too).
    run_id = entry.last_planned_materialization_run_id or entry.last_run_id
    if not run_id:
        return None
    run = instance.get_run_by_id(run_id)
    return run_id if run is not None and not run.is_finished else None


def checks_to_run(context: dg.SensorEvaluationContext, key: dg.AssetKey) -> list[dg.AssetCheckKey]:
    """The asset's own checks, not the daily reconciliation (a full _all_docs read)."""
    graph = context.repository_def.asset_graph
    return sorted(
        (check for check in graph.get_check_keys_for_assets({key}) if check.name != RECONCILE_CHECK),
        key=lambda check: check.name,
    )


def observation(db: str, seq: str, info: dict[str, Any]) -> dg.AssetObservation:
    return dg.AssetObservation(
        asset_key=couchdb_asset_key(db),
        metadata={
            "update_seq": seq,
            "doc_count": int(info.get("doc_count") or 0),
            "doc_del_count": int(info.get("doc_del_count") or 0),
        },
    )


def update_seq_sensor(dbs: tuple[str, ...], interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=UPDATE_SEQ_SENSOR,
        target=dg.AssetSelection.assets(*(raw_asset_key(db) for db in dbs)),
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Replicates a CouchDB database when its update_seq moves (one run per seq).",
    )
    def couchdb_update_seq(context: dg.SensorEvaluationContext, couchdb: CouchDBResource) -> dg.SensorResult:
        before: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        after = dict(before)
        requests: list[dg.RunRequest] = []
        events: list[dg.AssetObservation] = []
        for db in dbs:
            try:
                info = couchdb.client(db).db_info()
            except CouchError as exc:  # its message holds no credentials
                context.log.warning(f"{db}: {exc}")
                continue
            seq = seq_text(info.get("update_seq"))
            if seq == before.get(db):
                continue
            running = in_progress(context.instance, raw_asset_key(db))
            if running:
                context.log.info(f"{db}: update_seq moved; waiting for run {running} to finish")
                continue
            requests.append(
                dg.RunRequest(
                    run_key=f"{db}@{seq}",
                    asset_selection=[raw_asset_key(db)],
                    asset_check_keys=checks_to_run(context, raw_asset_key(db)),
                    tags={DB_TAG: db},
                )
            )
            events.append(observation(db, seq, info))
            after[db] = seq
        if not requests:
            return dg.SensorResult(
                skip_reason=dg.SkipReason("no database's update_seq moved"),
                cursor=json.dumps(after, sort_keys=True),
            )
        context.log.info("update_seq moved: " + ", ".join(r.tags[DB_TAG] for r in requests))
        return dg.SensorResult(
            run_requests=requests, asset_events=events, cursor=json.dumps(after, sort_keys=True)
        )

    return couchdb_update_seq


def automation_sensor(interval_seconds: int) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=interval_seconds,
        description="Evaluates every automation condition: views follow the raw layer, keepalives, daily checks.",
    )


def pipeline_sensors(dbs: tuple[str, ...], settings: OpsSettings) -> list[dg.SensorDefinition]:
    return [
        update_seq_sensor(dbs, settings.couchdb_poll_seconds),
        automation_sensor(settings.automation_seconds),
    ]
