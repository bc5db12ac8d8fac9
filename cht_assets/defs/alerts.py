"""Alert sensors: a failed run, a failed asset check, an asset whose freshness turns WARN or FAIL.

Each alert goes to ALERT_WEBHOOK_URL (Slack-compatible) and by e-mail when SMTP_HOST and
ALERT_EMAIL_TO are set, with a link into the UI (DAGSTER_UI_URL); with neither, it is only
logged by the sensor. Check and freshness sensors keep the states they alerted on in their
cursor: an unchanged state is never announced twice, a recovery is announced once. An alert
no channel accepted is tried again on the next tick.
"""

import json
from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from cht_assets.alerts import Alert, AlertDeliveryError, Notifier
from cht_assets.alerts.message import asset_url, check_url, run_url
from cht_assets.alerts.send import notifier_from
from cht_assets.settings import OpsSettings, load_ops_settings

RUN_SENSOR = "alert_on_run_failure"
CHECK_SENSOR = "alert_on_check_failure"
FRESHNESS_SENSOR = "alert_on_freshness"
ALERTED_FRESHNESS = ("WARN", "FAIL")
MAX_STEPS = 5


def notifier() -> Notifier:
    """Read when an alert is due, so a changed secret needs no code reload."""
    s = load_ops_settings()
    return notifier_from(
        webhook_url=s.alert_webhook_url,
        smtp_host=s.smtp_host,
        smtp_port=s.smtp_port,
        smtp_from=s.smtp_from,
        email_to=s.alert_email_to,
        smtp_user=s.smtp_user,
        smtp_password=s.smtp_password,
        smtp_tls=s.smtp_tls,
    )


def deliver(log: dg.DagsterLogManager, channels: Notifier, alert: Alert) -> bool:
    """Log the alert and send it; False when no channel took it (the caller retries later)."""
    log.info(f"alert: {alert.text()}")
    if not channels.configured:
        return True
    try:
        for failure in channels.send(alert):
            log.warning(f"alert partly delivered: {failure}")
    except AlertDeliveryError as exc:
        log.error(f"alert not delivered, will retry: {exc}")
        return False
    return True


def ui_url() -> str:
    return load_ops_settings().dagster_ui_url


def at(timestamp: float | None) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else datetime.now(UTC)


def run_failure_alert(context: dg.RunFailureSensorContext) -> Alert:
    run = context.dagster_run
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record else None
    details = [f"Job: {run.job_name}"]
    if run.asset_selection:
        keys = sorted(key.to_user_string() for key in run.asset_selection)
        details.append(
            f"Assets: {', '.join(keys[:10])}" + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
        )
    steps = context.get_step_failure_events()
    for event in steps[:MAX_STEPS]:
        error = event.step_failure_data.error
        message = error.message.strip() if error else "failed"
        details.append(f"Step {event.step_key}: {message}")
    if not steps and context.failure_event.message:
        details.append(f"Error: {context.failure_event.message}")
    return Alert("run", run.run_id[:8], "FAILED", at(ended), run_url(ui_url(), run.run_id), tuple(details))


def check_alert(key: dg.AssetCheckKey, record: AssetCheckExecutionRecord, failed: bool) -> Alert:
    event = record.event
    evaluation = event.dagster_event.event_specific_data if event and event.dagster_event else None
    details = []
    if failed and evaluation is not None:
        details.append(f"Severity: {evaluation.severity.value}")
        if evaluation.description:
            details.append(evaluation.description)
        for label, value in (evaluation.metadata or {}).items():
            if isinstance(value.value, (int, float, str)) and not isinstance(value.value, bool):
                details.append(f"{label}: {value.value}")
            elif label in ("examples", "missing_examples", "extra_examples"):
                details.append(f"{label}: {json.dumps(value.value)}")
    state = "FAILED" if failed else "PASSED again"
    return Alert(
        "check",
        f"{key.asset_key.to_user_string()}:{key.name}",
        state,
        at(event.timestamp if event else None),
        check_url(ui_url(), key.asset_key.path, key.name),
        tuple(details),
    )


def check_failure_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=CHECK_SENSOR,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts when an asset check fails, and once when it passes again.",
    )
    def alert_on_check_failure(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        failing: dict[str, bool] = json.loads(context.cursor) if context.cursor else {}
        keys = list(context.repository_def.asset_graph.asset_check_keys)
        # Non-public API (pinned dagster; covered by tests/ops): latest execution of each check.
        records = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        channels, sent = notifier(), 0
        for key, record in records.items():
            if record.status == AssetCheckExecutionRecordStatus.PLANNED:
                continue  # running, or its run died: the run failure alert covers that
            name = key.to_user_string()
            failed = record.status == AssetCheckExecutionRecordStatus.FAILED
            if failed == (name in failing):
                continue
            if deliver(context.log, channels, check_alert(key, record, failed)):
                sent += 1
                if failed:
                    failing[name] = True
                else:
                    failing.pop(name, None)
        cursor = json.dumps(failing, sort_keys=True)
        return dg.SensorResult(skip_reason=dg.SkipReason(f"{sent} check alerts sent"), cursor=cursor)

    return alert_on_check_failure


def freshness_alert(key: dg.AssetKey, state: str, updated: datetime, policy: dg.FreshnessPolicy) -> Alert:
    details = []
    fail_window = getattr(policy, "fail_window", None)
    if fail_window is not None:
        warn = getattr(policy, "warn_window", None)
        details.append(
            f"Policy: materialized within {fail_window.to_timedelta()}"
            + (f" (warn after {warn.to_timedelta()})" if warn else "")
        )
    label = state if state in ALERTED_FRESHNESS else f"{state} again"
    return Alert(
        "freshness", key.to_user_string(), label, updated, asset_url(ui_url(), key.path), tuple(details)
    )


def freshness_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=FRESHNESS_SENSOR,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts when an asset's freshness turns WARN or FAIL, and once when it passes again.",
    )
    def alert_on_freshness(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        alerted: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        graph = context.repository_def.asset_graph
        policies = {
            key: graph.get(key).freshness_policy
            for key in graph.get_all_asset_keys()
            if graph.get(key).freshness_policy is not None
        }
        # Non-public API (pinned dagster; covered by tests/ops): the daemon's latest state per asset.
        records = context.instance.get_freshness_state_records(list(policies))
        channels, sent = notifier(), 0
        for key, record in records.items():
            name, state = key.to_user_string(), record.freshness_state.value
            if state in ALERTED_FRESHNESS:
                if alerted.get(name) == state:
                    continue
            elif state == "PASS" and name in alerted:
                pass
            else:
                continue
            if deliver(context.log, channels, freshness_alert(key, state, record.updated_at, policies[key])):
                sent += 1
                if state in ALERTED_FRESHNESS:
                    alerted[name] = state
                else:
                    alerted.pop(name, None)
        cursor = json.dumps(alerted, sort_keys=True)
        return dg.SensorResult(skip_reason=dg.SkipReason(f"{sent} freshness alerts sent"), cursor=cursor)

    return alert_on_freshness


def run_failure_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=RUN_SENSOR,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts once for every failed run of this code location.",
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
        alert = run_failure_alert(context)
        if not deliver(context.log, notifier(), alert):
            # Fails the tick: visible on the sensor and in the run's log.
            raise AlertDeliveryError(f"alert for run {context.dagster_run.run_id} not delivered")

    return alert_on_run_failure


def alert_sensors(settings: OpsSettings) -> list[dg.SensorDefinition]:
    seconds = settings.alert_sensor_seconds
    return [run_failure_sensor(seconds), check_failure_sensor(seconds), freshness_sensor(seconds)]
