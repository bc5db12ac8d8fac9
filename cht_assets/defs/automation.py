"""How the graph keeps itself fresh, applied in one place over every asset of the code location.

Freshness (FRESHNESS_*_MINUTES; warn at half the window):

    raw                          30 min   replicas of CouchDB
    compat, functions, *views    60 min   the SQL view layers
    superset                     60 min
    ops (backups)                26 h     (no warn window)

What runs when:

    raw         the `couchdb_update_seq` sensor, when a database changes; and a keepalive
                every KEEPALIVE_MINUTES (default a third of the raw window), so an idle
                database still counts as checked
    views       in the run the `couchdb_update_seq` sensor starts for a replica, after it,
                those the changed docs reach (cht_assets.defs.sensors); else eager: when
                anything upstream updated (joining the run of a raw keepalive), but not by such
                a sensor run; only when every upstream blocking check passed; roots (functions,
                ...) also on the keepalive
    dictionary  the form tables as a view layer; the page after the views in their run (it is
                downstream of every view but those waiting for a form), whatever their
                checks said: it documents what there is; not after the sensor's runs of the
                views a change reaches (it documents what the views are, not their rows)
    superset    eager, but never joining a run requested for the views: Superset assets run in
                runs of their own, so a Superset outage fails Superset runs only; the database
                connection (and access after it) on a keepalive of its own, half a period after
                the raw one; datasets follow their views, not that keepalive
    ops         the daily backup schedule (cht_assets.defs.schedules)
    matches_couchdb  the daily reconciliation schedule only, never with a materialization
                (cht_assets.defs.reconcile)

A missing asset (first start, new form) is built once everything upstream exists; after a failed
attempt it waits for the next upstream update or keepalive instead of retrying every tick. An
asset waiting for a form the deployment lacks (cht_assets.defs.views) has no automation until
the form appears.
"""

import warnings
from datetime import timedelta

import dagster as dg

from cht_assets.defs import alerts, backups, reconcile, schedules, sensors
from cht_assets.defs.raw import STRUCTURE_ONLY_TAG
from cht_assets.defs.superset import DATABASE_KEY
from cht_assets.defs.views import WAITING_TAG
from cht_assets.settings import OpsSettings, load_ops_settings, load_settings

RAW_GROUP = "raw"
SUPERSET_GROUP = "superset"
OPS_GROUP = "ops"
EXTERNAL_GROUPS = ("couchdb",)


def window(minutes: int, *, warn: bool = True) -> dg.FreshnessPolicy:
    """Fail after `minutes`, warn after half of it (Dagster wants both windows >= 1 minute)."""
    fail = timedelta(minutes=max(1, minutes))
    warn_after = fail / 2 if warn and fail >= timedelta(minutes=2) else None
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn_after)


def freshness_policy(group: str | None, settings: OpsSettings) -> dg.FreshnessPolicy | None:
    if group in EXTERNAL_GROUPS:
        return None
    if group == RAW_GROUP:
        return window(settings.freshness_raw_minutes)
    if group == SUPERSET_GROUP:
        return window(settings.freshness_superset_minutes)
    if group == OPS_GROUP:
        return window(settings.freshness_backup_minutes, warn=False)
    return window(settings.freshness_views_minutes)


def keepalive_cron(minutes: int, *, offset: bool = False) -> str | None:
    """Every N minutes (N < 60), every N hours, or daily; None turns the keepalive off.
    `offset` shifts the ticks by half a period, so they never coincide with the plain ones."""
    if minutes <= 0:
        return None
    if minutes < 60:
        shift = minutes // 2 if offset else 0
        return f"{shift}-59/{minutes} * * * *" if shift else f"*/{minutes} * * * *"
    hours = min(24, minutes // 60)
    minute = 30 if offset else 0
    return f"{minute} */{hours} * * *" if hours < 24 else f"{minute} 0 * * *"


def keepalive(cron: str) -> dg.AutomationCondition:
    return (
        dg.AutomationCondition.cron_tick_passed(cron).since_last_handled()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"keepalive ({cron})")


def build_when_missing() -> dg.AutomationCondition:
    """A missing asset (first start, or new in the code) is built once its upstream exists; after
    a failed attempt it waits for an upstream update or a keepalive instead of retrying every tick.
    (eager() alone builds only assets that become missing after it was applied.)"""
    AC = dg.AutomationCondition
    return (
        AC.missing()
        & ~AC.execution_failed()
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("missing, not failed")


def eager_unless_reached() -> dg.AutomationCondition:
    """eager(), but an update made by a run whose views are those its changes reach (the
    update_seq sensor's, tagged REACHED_TAG) is not one to follow: that run held every view the
    changes could move, and the others are as they were. Their keepalive still comes."""
    AC = dg.AutomationCondition
    updated = AC.any_deps_match(
        (
            AC.newly_updated()
            & ~AC.executed_with_root_target()
            & ~AC.all_new_updates_have_run_tags(tag_keys={sensors.REACHED_TAG})
        ).with_label("newly_updated_without_root, not by a run of the views reached")
        | AC.will_be_requested()
    ).with_label("any_deps_updated")
    return AC.eager().replace("any_deps_updated", updated)


def follow_upstream() -> dg.AutomationCondition:
    AC = dg.AutomationCondition
    return (
        (eager_unless_reached() | build_when_missing()) & AC.all_deps_blocking_checks_passed()
    ).with_label("eager, upstream blocking checks passed")


def upstream_updated_since_handled(ignored: dg.AssetSelection) -> dg.AutomationCondition:
    """An upstream update this asset has not served: one later than both this asset's last
    request and its last materialization. Not `since_last_handled()`: that ORs its resets, and an
    OR drops the events' times, so an update seen on the same tick as this asset's own request or
    materialization counted as served although it came after them (a Superset dataset kept a
    formview's old columns). One `since` per reset keeps the times: the later event wins."""
    AC = dg.AutomationCondition
    updated = AC.any_deps_match(AC.newly_updated()).ignore(ignored)
    return (updated.since(AC.newly_requested()) & updated.since(AC.newly_updated())).with_label(
        "any_deps_updated since handled"
    )


def after_upstream_finished(ignored: dg.AssetSelection) -> dg.AutomationCondition:
    """eager() for Superset: it joins a run requested for other Superset assets, but never one
    requested for the views; it waits until those finished. Updates of `ignored` start nothing."""
    AC = dg.AutomationCondition
    superset = dg.AssetSelection.groups(SUPERSET_GROUP)
    views_requested = AC.any_deps_match(AC.will_be_requested()).ignore(superset)
    joins = (
        AC.any_deps_match(AC.will_be_requested())
        .allow(superset)
        .ignore(ignored)
        .with_label("joins a Superset run")
    )
    return (
        (upstream_updated_since_handled(ignored) | joins | build_when_missing())
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & ~views_requested
        & AC.all_deps_blocking_checks_passed()
    ).with_label("after upstream finished, upstream blocking checks passed")


def describe_what_exists() -> dg.AutomationCondition:
    """For the data dictionary page: as the views, but a failed check upstream does not hold
    it: it documents the views as they are. It documents what they are, not their rows: not
    after the update_seq sensor's runs of the views a change reaches."""
    return (eager_unless_reached() | build_when_missing()).with_label("eager, whatever the checks")


def automation_condition(spec: dg.AssetSpec, minutes: int) -> dg.AutomationCondition | None:
    """The condition for one asset; `minutes` is the keepalive period (0: none)."""
    group = spec.group_name
    if group == OPS_GROUP:
        return spec.automation_condition
    if group == RAW_GROUP:
        cron = keepalive_cron(minutes)
        return keepalive(cron) if cron else spec.automation_condition
    if STRUCTURE_ONLY_TAG in spec.tags:
        return describe_what_exists()
    superset = group == SUPERSET_GROUP
    # A dataset follows its view, which the raw keepalive refreshes, not the keepalive of the
    # database connection as well (that provisions the same connection again): else every
    # dataset and dashboard was published twice a period. Access follows the connection.
    follows_views = {dep.asset_key for dep in spec.deps} - {DATABASE_KEY}
    ignored = dg.AssetSelection.assets(DATABASE_KEY) if follows_views else dg.AssetSelection.assets()
    condition = after_upstream_finished(ignored) if superset else follow_upstream()
    # Roots have nothing upstream to follow. Superset's keepalive ticks apart from the raw one:
    # assets requested on one tick share a run.
    cron = keepalive_cron(minutes, offset=superset)
    if not spec.deps and cron:
        condition = (condition | keepalive(cron)).with_label(
            f"{condition.get_label()}, or keepalive ({cron})"
        )
    return condition


def operate(spec: dg.AssetSpec, settings: OpsSettings) -> dg.AssetSpec:
    if spec.group_name in EXTERNAL_GROUPS:
        return spec
    if WAITING_TAG in spec.tags:
        # Waiting for a form: nothing to follow until it appears (the location reloads then).
        return spec.replace_attributes(automation_condition=None)
    policy = freshness_policy(spec.group_name, settings)
    if policy is not None:
        spec = dg.apply_freshness_policy(spec, policy, overwrite_existing=False)
    condition = automation_condition(spec, settings.keepalive_minutes)
    return spec.replace_attributes(automation_condition=condition)


def operations() -> dg.Definitions:
    """Sensors, schedules, alerts, reconciliation and backups of the deployment."""
    settings, ops = load_settings(), load_ops_settings()
    dbs = settings.couchdb_dbs
    return dg.Definitions(
        assets=backups.backup_assets(dbs),
        asset_checks=[*backups.backup_checks(dbs), *reconcile.reconcile_checks(dbs)],
        jobs=[reconcile.repair_job()],
        sensors=[*sensors.pipeline_sensors(dbs, ops), *alerts.alert_sensors(ops)],
        schedules=schedules.schedules(dbs, ops),
    )


def with_operations(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with the operations merged in, a freshness policy on every materializable asset and
    the automation conditions above."""
    settings = load_ops_settings()
    merged = dg.Definitions.merge(defs, operations())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # map_asset_specs; DOP relies on it too
        return merged.map_asset_specs(func=lambda spec: operate(spec, settings))
