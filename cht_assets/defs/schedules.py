"""Schedules: the daily backups (on by default), and the whole graph at a fixed interval for
deployments that prefer couch2pg's model to sensors and automation (off by default: turn it on in
the UI or with `dagster schedule start full_pipeline`, and turn the sensors off)."""

import dagster as dg

from cht_assets.defs.reconcile import reconcile_check_keys
from cht_assets.settings import OpsSettings

BACKUP_SCHEDULE = "daily_backups"
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


def pipeline_schedule(dbs: tuple[str, ...], settings: OpsSettings) -> dg.ScheduleDefinition:
    everything = dg.AssetSelection.all() - dg.AssetSelection.groups("ops")
    return dg.ScheduleDefinition(
        name=PIPELINE_SCHEDULE,
        target=everything - dg.AssetSelection.checks(*reconcile_check_keys(dbs)),
        cron_schedule=settings.pipeline_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Replicates every database and refreshes every view and Superset asset (PIPELINE_CRON).",
    )


def schedules(dbs: tuple[str, ...], settings: OpsSettings) -> list[dg.ScheduleDefinition]:
    return [backup_schedule(settings), pipeline_schedule(dbs, settings)]
