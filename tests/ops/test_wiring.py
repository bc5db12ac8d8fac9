"""The operations wiring of the code location, without servers: freshness windows by layer and
from the environment, automation conditions, schedules and their jobs."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import pytest

from cht_assets.defs.automation import keepalive_cron, window
from cht_assets.defs.reconcile import CHECK_NAME
from cht_assets.defs.views import WAITING_TAG
from cht_assets.servers.process import free_port


@pytest.fixture
def defs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.Definitions]:
    monkeypatch.setenv("POSTGRES_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none")  # no formviews
    monkeypatch.setenv("COUCHDB_DBS", "medic,medic-logs")
    monkeypatch.setenv("FRESHNESS_RAW_MINUTES", "12")
    monkeypatch.setenv("FRESHNESS_VIEWS_MINUTES", "90")
    monkeypatch.setenv("FRESHNESS_SUPERSET_MINUTES", "120")
    monkeypatch.setenv("KEEPALIVE_MINUTES", "4")
    sys.modules.pop("cht_assets.definitions", None)
    yield importlib.import_module("cht_assets.definitions").defs
    sys.modules.pop("cht_assets.definitions", None)  # built from this test's environment


def test_every_materializable_asset_has_its_layers_freshness_policy(defs: dg.Definitions) -> None:
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    expected = {"raw": 12, "superset": 120, "ops": 26 * 60, "couchdb": None}
    for key, spec in specs.items():
        # A view waiting for a form the deployment lacks is never stale: nothing to alert on.
        minutes = None if WAITING_TAG in spec.tags else expected.get(spec.group_name, 90)
        policy = spec.freshness_policy
        if minutes is None:
            assert policy is None, key
            continue
        assert policy.fail_window.to_timedelta() == timedelta(minutes=minutes), key
        warn = policy.warn_window.to_timedelta() if policy.warn_window else None
        assert warn == (None if spec.group_name == "ops" else timedelta(minutes=minutes) / 2), key


def test_automation_conditions_by_layer(defs: dg.Definitions) -> None:
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    label = {
        key: spec.automation_condition.get_label() if spec.automation_condition else None
        for key, spec in specs.items()
    }
    assert label["raw/medic"] == "keepalive (*/4 * * * *)"
    assert label["couchdb/medic"] is None and label["ops/postgres_backup"] is None
    assert label["useviews/useview_chw_activity"] == "eager, upstream blocking checks passed"
    assert (
        label["functions/cht_to_date"] == "eager, upstream blocking checks passed, or keepalive (*/4 * * * *)"
    )
    assert label["superset/datasets/useview_chw_activity"].startswith("after upstream finished")
    assert label["superset/database"].endswith("or keepalive (2-59/4 * * * *)")  # apart from raw's ticks


def test_schedules_and_their_jobs_resolve(defs: dg.Definitions) -> None:
    schedules = {schedule.name: schedule for schedule in defs.schedules}
    assert schedules["daily_backups"].default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedules["full_pipeline"].default_status == dg.DefaultScheduleStatus.STOPPED
    graph = defs.resolve_asset_graph()
    backups = defs.resolve_job_def(schedules["daily_backups"].job_name)
    assert {key.path[0] for key in backups.asset_layer.executable_asset_keys} == {"ops"}
    everything = defs.resolve_job_def(schedules["full_pipeline"].job_name)
    groups = {graph.get(key).group_name for key in everything.asset_layer.executable_asset_keys}
    assert groups == {
        "raw",
        "base",
        "compat",
        "functions",
        "contactviews",
        "formviews",
        "useviews",
        "superset",
        "dictionary",
    }
    checks = everything.asset_layer.asset_graph.asset_check_keys
    assert not [check for check in checks if check.name == CHECK_NAME]
    assert defs.resolve_job_def("repair_replica") is not None
    # The reconciliation: its own daily schedule, a job of the checks alone.
    reconciliation = schedules["daily_reconciliation"]
    assert reconciliation.default_status == dg.DefaultScheduleStatus.RUNNING
    assert reconciliation.cron_schedule == "0 2 * * *" and reconciliation.job_name == "reconcile_replicas"
    job = defs.resolve_job_def(reconciliation.job_name)
    assert not job.asset_layer.executable_asset_keys
    assert {check.to_user_string() for check in job.asset_layer.asset_graph.asset_check_keys} == {
        "couchdb/medic:matches_couchdb",
        "couchdb/medic_logs:matches_couchdb",
    }


def test_a_manual_materialization_leaves_the_reconciliation_out(defs: dg.Definitions) -> None:
    """What "Materialize all" and `dagster asset materialize --select '*'` select: every
    materializable asset with its checks, the full _all_docs read not among them."""
    graph = defs.resolve_asset_graph()
    everything = dg.AssetSelection.from_coercible(["*"])
    assert {key.to_user_string() for key in everything.resolve(graph)} >= {"raw/medic", "raw/medic_logs"}
    checks = everything.resolve_checks(graph)
    assert checks and not [check for check in checks if check.name == CHECK_NAME]
    # The check belongs to the external CouchDB asset; the replica is what it reads.
    (check,) = [
        key for key in graph.asset_check_keys if key.name == CHECK_NAME and "medic" in key.asset_key.path
    ]
    assert check.asset_key == dg.AssetKey(["couchdb", "medic"])
    assert not graph.get(check.asset_key).is_materializable


@pytest.mark.parametrize(
    ("minutes", "offset", "cron"),
    [(10, False, "*/10 * * * *"), (10, True, "5-59/10 * * * *"), (1, True, "*/1 * * * *"),
     (90, False, "0 */1 * * *"), (180, True, "30 */3 * * *"), (2000, False, "0 0 * * *"), (0, False, None)],
)  # fmt: skip
def test_keepalive_cron(minutes: int, offset: bool, cron: str | None) -> None:
    assert keepalive_cron(minutes, offset=offset) == cron


def test_windows_respect_dagsters_one_minute_floor() -> None:
    assert window(1).warn_window is None and window(1).fail_window.to_timedelta() == timedelta(minutes=1)
    assert window(0).fail_window.to_timedelta() == timedelta(minutes=1)
    assert window(60, warn=False).warn_window is None
