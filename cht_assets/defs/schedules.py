"""Schedules: the daily backups and reconciliation (on by default), and the whole graph at a fixed
interval for deployments that prefer couch2pg's model to sensors and automation (off by default:
turn it on in the UI or with `dagster schedule start full_pipeline`, and turn the sensors off).
The reconciliation is a schedule, not an automation condition, so it keeps running when the
automation sensor is stopped for couch2pg's model."""

import dagster as dg

from cht_assets.defs.reconcile import RECONCILE_JOB, reconcile_check_keys
from cht_assets.settings import OpsSettings

BACKUP_SCHEDULE = "daily_backups"
RECONCILE_SCHEDULE = "daily_reconciliation"
PIPELINE_SCHEDULE = "full_pipeline"


def backup_schedule(settings: OpsSettings) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=BACKUP_SCHEDULE,
        target=dg.AssetSelection.groups("ops"),
        cron_schedule=settings.backup_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="pg_dump of the analytics database and a dump of each CouchDB database, with restore drills.",
    )


def reconcile_schedule(dbs: tuple[str, ...], settings: OpsSettings) -> dg.ScheduleDefinition:
    """The reconciliation checks alone, as a named job that can also be launched by hand
    (`dagster job execute -m cht_assets.definitions -j reconcile_replicas`)."""
    job = dg.define_asset_job(
        RECONCILE_JOB,
        selection=dg.AssetSelection.checks(*reconcile_check_keys(dbs)),
        description="Compares every CouchDB database with its replica (_all_docs); changes nothing.",
    )
    return dg.ScheduleDefinition(
        name=RECONCILE_SCHEDULE,
        job=job,
        cron_schedule=settings.reconcile_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="matches_couchdb of every CouchDB database: docs missing from the replica, purged docs.",
    )


def pipeline_schedule(settings: OpsSettings) -> dg.ScheduleDefinition:
    # Materializable assets and their checks: the reconciliation, a check of the external
    # CouchDB assets, is not among them.
    return dg.ScheduleDefinition(
        name=PIPELINE_SCHEDULE,
        target=dg.AssetSelection.all() - dg.AssetSelection.groups("ops"),
        cron_schedule=settings.pipeline_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Replicates every database and refreshes every view and Superset asset (PIPELINE_CRON).",
    )


def schedules(dbs: tuple[str, ...], settings: OpsSettings) -> list[dg.ScheduleDefinition]:
    return [backup_schedule(settings), reconcile_schedule(dbs, settings), pipeline_schedule(settings)]
