"""What starts runs: CouchDB's update_seq for the raw replicas, automation conditions for the rest.

`couchdb_update_seq` watches each database with a longpoll `_changes` request (since the seq it
saw last), which CouchDB answers as soon as a change arrives, or after just under
COUCHDB_POLL_SECONDS: a change is seen within a second or so, and an idle database still gets
at most one request per interval, as when its `update_seq` (GET /{db}) was polled. When one
changed, its `update_seq` is read, the database's replication asset runs (run_key `<db>@<seq>`:
one run per seq, however often the sensor looks) and the external CouchDB asset gets an
observation with the seq and the doc counts. A database whose replication is already running is
not watched; it waits for the next tick. The view-layer assets downstream of the replica join its run,
after it: waiting for the automation sensor's next tick and a second run's start-up (each run
loads the code location afresh) doubled the time from a CouchDB write to the use views. Only
those the changed docs reach join (read from `_changes` before the run, up to PREDICTED_CHANGES;
cht_assets.warehouse.reach), with what reads them: a new report refreshes its form's tables and
what reads them, not the contacts or the translations, and the run pays Dagster's fixed cost
(its events per asset and check) for those only. The run is tagged REACHED_TAG, so the automation
does not follow its replica's update with the other views. Dagster
applies the same rules in the run as the automation would between runs: a view runs only when
the blocking checks upstream of it passed. Superset assets still follow in runs of their own.
On a first start, while something the views read outside the run (a function) was never
built, the replica runs alone and the automation builds the views once their upstream exists.
No two runs refresh the views at once: a second database that moved on the same tick, or one
that moved while a run refreshes the views, is replicated alone and its views are due (kept in
the cursor): a run of their own follows once no other run refreshes them. It never waits behind
a chain of view runs (a first start's automation builds the graph in a minute of them).
`automation` evaluates every asset's automation condition (cht_assets.defs.automation); both
are on by default.
"""

import json
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any

import dagster as dg
import psycopg

from cht_assets.couch.errors import CouchError
from cht_assets.defs.raw import RAW_DOCS_METADATA, STRUCTURE_ONLY_TAG, couchdb_asset_key, raw_asset_key
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.settings import OpsSettings
from cht_assets.warehouse.reach import EVERY_DOC, objects_reached

UPDATE_SEQ_SENSOR = "couchdb_update_seq"
AUTOMATION_SENSOR = "automation"
DB_TAG = "cht/couchdb_db"
# Groups that never join a replication run: the replicas themselves, Superset (its outages must
# fail Superset runs only) and the backups (cht_assets.defs.automation names the same groups).
NOT_JOINING_GROUPS = frozenset({"couchdb", "raw", "superset", "ops"})
# A tick is a gRPC call the daemon allows 60 s by default, and the daemon evaluates its other
# sensors (alerts, forms) after this one: a watch never holds them longer than this.
MAX_WATCH_SECONDS = 20
# A tick that sees more changes than this lets every view join: the changes are read twice (here
# and by the replication), and at that many the views' own work outweighs a run's fixed cost.
PREDICTED_CHANGES = 1000
# On a run whose views are those its changes reach: the automation does not count its replica's
# update as one the other views must follow (cht_assets.defs.automation).
REACHED_TAG = "cht/views_reached"


def watch_seconds(interval_seconds: int) -> float:
    """How long a tick waits for a change: just under the interval, so an idle database gets no
    more requests than polling its update_seq every interval would send."""
    return float(max(0, min(MAX_WATCH_SECONDS, interval_seconds - 1)))


def changed_databases(
    context: dg.SensorEvaluationContext, couchdb: CouchDBResource, known: dict[str, str], seconds: float
) -> list[str]:
    """The databases of `known` with a change after their seq: one longpoll `_changes` each, at
    once, returning as soon as one answers with a change (or after `seconds`)."""
    if not known:
        return []
    pool = ThreadPoolExecutor(max_workers=len(known), thread_name_prefix="couchdb-watch")
    watches = {pool.submit(couchdb.client(db).wait_for_change, seq, seconds): db for db, seq in known.items()}
    changed: list[str] = []
    try:
        # The client's own timeouts end every watch; this bounds the tick if they do not.
        for watch in as_completed(watches, timeout=seconds + 30):
            try:
                if watch.result():
                    break
            except CouchError as exc:  # its message holds no credentials
                context.log.warning(f"{watches[watch]}: {exc}")
    except FuturesTimeout:
        context.log.warning("CouchDB did not answer the watches in time")
    finally:
        # Watches still open end by themselves within `seconds`; what they would have seen is
        # the next tick's (its watch, since the same seq, answers at once).
        pool.shutdown(wait=False, cancel_futures=True)
    for watch, db in watches.items():
        if watch.done() and not watch.cancelled() and watch.exception() is None and watch.result():
            changed.append(db)
    return changed


def seq_text(seq: Any) -> str:
    """CouchDB 2+ sends an opaque string, PouchDB and CouchDB 1 a number."""
    return seq if isinstance(seq, str) else json.dumps(seq)


def unfinished_runs(instance: dg.DagsterInstance, keys: list[dg.AssetKey]) -> list[str]:
    """The ids of the unfinished runs that plan to materialize any of `keys` (one read of the
    asset records; the views of one run share its id)."""
    # SQLite storage keeps only last_run_id (set when a run plans the asset, too).
    run_ids = {
        record.asset_entry.last_planned_materialization_run_id or record.asset_entry.last_run_id
        for record in instance.get_asset_records(keys)
    }
    return sorted(
        run_id
        for run_id in run_ids - {None}
        if (run := instance.get_run_by_id(run_id)) is not None and not run.is_finished
    )


def in_progress(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The id of an unfinished run that plans to materialize `key`, if any."""
    return next(iter(unfinished_runs(instance, [key])), None)


def checks_to_run(context: dg.SensorEvaluationContext, keys: list[dg.AssetKey]) -> list[dg.AssetCheckKey]:
    """The assets' own checks (the daily reconciliation is the CouchDB asset's, never among them)."""
    graph = context.repository_def.asset_graph
    return sorted(graph.get_check_keys_for_assets(set(keys)), key=lambda check: check.to_user_string())


def views_downstream(context: dg.SensorEvaluationContext, keys: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """The view-layer assets that follow `keys` by automation (a view waiting for a form has no
    automation condition, and stays out as the automation would leave it)."""
    graph = context.repository_def.asset_graph
    downstream = dg.AssetSelection.assets(*keys).downstream().resolve(graph) - set(keys)
    return sorted(
        (
            key
            for key in downstream
            if graph.get(key).is_materializable
            and graph.get(key).group_name not in NOT_JOINING_GROUPS
            and graph.get(key).automation_condition is not None
        ),
        key=lambda key: key.to_user_string(),
    )


def views_reached(
    context: dg.SensorEvaluationContext,
    couchdb: CouchDBResource,
    postgres: PostgresResource,
    db: str,
    since: str | None,
    views: list[dg.AssetKey],
) -> list[dg.AssetKey] | None:
    """Of `views`, those the changes of `db` after `since` reach (cht_assets.warehouse.reach)
    and what reads them; None when that cannot be told (first tick, more than PREDICTED_CHANGES
    changes, CouchDB or PostgreSQL not answering): then every view joins."""
    if since is None:
        return None
    graph = context.repository_def.asset_graph
    raw = raw_asset_key(db)
    filters = {
        key.to_user_string(): metadata_text(graph.get(key).metadata.get(RAW_DOCS_METADATA))
        for key in views
        if raw in graph.get(key).parent_keys
    }
    try:
        with couchdb.client(db).changes(since, PREDICTED_CHANGES + 1) as feed:
            changes = list(feed.rows())
        if len(changes) > PREDICTED_CHANGES:
            return None
        with psycopg.connect(postgres.conninfo, autocommit=True, connect_timeout=10) as conn:
            reached = objects_reached(conn, db, changes, filters)
    except CouchError as exc:  # its message holds no credentials
        context.log.warning(f"{db}: {exc}; every view joins")
        return None
    except psycopg.Error as exc:  # its message may name the server and user: the kind only
        context.log.warning(f"{db}: PostgreSQL {type(exc).__name__}; every view joins")
        return None
    keys = [dg.AssetKey.from_user_string(name) for name in reached]
    closure = dg.AssetSelection.assets(*keys).downstream().resolve(graph) if keys else set()
    return [key for key in views if key in closure and STRUCTURE_ONLY_TAG not in graph.get(key).tags]


def metadata_text(value: Any) -> str:
    return EVERY_DOC if value is None else str(getattr(value, "value", value))


def views_upstream_missing(context: dg.SensorEvaluationContext, views: list[dg.AssetKey]) -> bool:
    """Whether a view-layer asset the views read, outside the run (a function, a root use view),
    was never built: on a first start the automation builds those, and the views after them."""
    graph = context.repository_def.asset_graph
    upstream = [
        key
        for key in dg.AssetSelection.assets(*views).upstream().resolve(graph) - set(views)
        if graph.get(key).is_materializable and graph.get(key).group_name not in NOT_JOINING_GROUPS
    ]
    if not upstream:  # get_asset_records([]) would read every asset
        return False
    built = {
        record.asset_entry.asset_key
        for record in context.instance.get_asset_records(upstream)
        if record.asset_entry.last_materialization is not None
    }
    return not built >= set(upstream)


def observation(db: str, seq: str, info: dict[str, Any]) -> dg.AssetObservation:
    return dg.AssetObservation(
        asset_key=couchdb_asset_key(db),
        metadata={
            "update_seq": seq,
            "doc_count": int(info.get("doc_count") or 0),
            "doc_del_count": int(info.get("doc_del_count") or 0),
        },
    )


VIEWS_DUE = "_views_due"  # cursor entry: no CouchDB database name starts with "_"
VIEWS_TAG = "cht/views_for"


def read_cursor(cursor: str | None) -> tuple[dict[str, str], set[str]]:
    """The seq seen of each database, and the databases replicated without their views."""
    seqs: dict = json.loads(cursor) if cursor else {}
    due = set(seqs.pop(VIEWS_DUE, []))
    return seqs, due


def write_cursor(seqs: dict[str, str], due: set[str]) -> str:
    return json.dumps({**seqs, **({VIEWS_DUE: sorted(due)} if due else {})}, sort_keys=True)


def run_request(
    context: dg.SensorEvaluationContext, run_key: str, selection: list[dg.AssetKey], tags: dict[str, str]
) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        asset_selection=selection,
        asset_check_keys=checks_to_run(context, selection),
        tags=tags,
    )


def update_seq_sensor(dbs: tuple[str, ...], interval_seconds: int) -> dg.SensorDefinition:
    seconds = watch_seconds(interval_seconds)

    @dg.sensor(
        name=UPDATE_SEQ_SENSOR,
        # The replicas and what may join their runs (views_downstream picks which).
        target=dg.AssetSelection.assets(*(raw_asset_key(db) for db in dbs)).downstream(),
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Replicates a CouchDB database when its update_seq moves (one run per seq), the views "
            "that follow it in the same run."
        ),
    )
    def couchdb_update_seq(
        context: dg.SensorEvaluationContext, couchdb: CouchDBResource, postgres: PostgresResource
    ) -> dg.SensorResult:
        before, due = read_cursor(context.cursor)
        after = dict(before)
        requests: list[dg.RunRequest] = []
        events: list[dg.AssetObservation] = []
        views_busy = False  # a run (another, or one of this tick's) refreshes the views
        running = {db: in_progress(context.instance, raw_asset_key(db)) for db in dbs}
        for db, run_id in running.items():
            if run_id:
                context.log.info(f"{db}: waiting for run {run_id} to finish")
        idle = [db for db in dbs if not running[db]]
        if all(db in before for db in idle):
            look = changed_databases(context, couchdb, {db: before[db] for db in idle}, seconds)
        else:  # a database never seen (first tick): read them all at once
            look = idle
        for db in look:
            try:
                info = couchdb.client(db).db_info()
            except CouchError as exc:  # its message holds no credentials
                context.log.warning(f"{db}: {exc}")
                continue
            seq = seq_text(info.get("update_seq"))
            if seq == before.get(db):
                continue
            selection, tags = [raw_asset_key(db)], {DB_TAG: db}
            views = views_downstream(context, selection)
            views_busy = views_busy or bool(views and unfinished_runs(context.instance, views))
            if views and views_busy:
                # One run at a time refreshes the views, and a replica's views run after it. Its
                # docs landing while another run's views read the replica, the automation would
                # count that materialization as handling them: the replica runs alone now (never
                # kept waiting behind a chain of view runs) and its views are due, in a run of
                # their own once no other refreshes them.
                context.log.info(f"{db}: replicated alone, its views once the views' run has finished")
                due.add(db)
            elif views and not views_upstream_missing(context, views):
                views_busy = True
                reached = views_reached(context, couchdb, postgres, db, before.get(db), views)
                selection += views if reached is None else reached
                tags = tags if reached is None else {**tags, REACHED_TAG: "true"}
                due.discard(db)
            requests.append(run_request(context, f"{db}@{seq}", selection, tags))
            events.append(observation(db, seq, info))
            after[db] = seq
        for db in sorted(due):
            # A database replicated alone on this tick had its views busy (views_busy holds) or
            # their upstream missing (left to the automation below): its replica never races a
            # views run requested here.
            views = views_downstream(context, [raw_asset_key(db)])
            if running.get(db) or views_busy or unfinished_runs(context.instance, views):
                continue
            due.discard(db)
            if not views or views_upstream_missing(context, views):
                continue  # a first start: the automation builds them once their upstream exists
            views_busy = True
            requests.append(run_request(context, f"{db}@{after.get(db)}/views", views, {VIEWS_TAG: db}))
        cursor = write_cursor(after, due)
        if not requests:
            reason = f"the views of {', '.join(sorted(due))} wait for the views' run" if due else ""
            return dg.SensorResult(
                skip_reason=dg.SkipReason(reason or "no database's update_seq moved"), cursor=cursor
            )
        context.log.info("runs requested: " + ", ".join(r.run_key or "" for r in requests))
        return dg.SensorResult(run_requests=requests, asset_events=events, cursor=cursor)

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
