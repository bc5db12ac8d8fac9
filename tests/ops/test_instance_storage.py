"""The instance storage `dagster dev` gets (cht_assets.instance_storage): Dagster's SQLite files
through kept connections. A DAGSTER_HOME moves between it and Dagster's own storage either way,
instances in other processes (webserver, daemon, run workers) write beside it, and a run's live
log view wakes while the run goes on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from cht_assets.instance_storage import KEPT_EVENT_LOG_FILES, KeptSqliteEventLogStorage
from cht_assets.servers.couchdb import PROJECT_ROOT
from cht_assets.servers.dagster_dev import DAGSTER_YAML, INSTANCE_SETTINGS, NO_COMPUTE_LOGS
from cht_assets.servers.process import wait_until

STOCK = INSTANCE_SETTINGS + NO_COMPUTE_LOGS  # Dagster's own SQLite storage
KEPT = DAGSTER_YAML + NO_COMPUTE_LOGS  # `dagster dev`'s


def counted_assets(prefix: str, count: int, release: str | None = None) -> list[dg.AssetsDefinition]:
    """`count` assets with a check each; the first waits for the file `release` when given."""

    def build(index: int) -> dg.AssetsDefinition:
        @dg.asset(
            key=[prefix, f"a{index}"],
            check_specs=[dg.AssetCheckSpec("positive", asset=[prefix, f"a{index}"])],
        )
        def counted() -> dg.MaterializeResult:
            if release and index == 0:
                wait_until(lambda: os.path.exists(release), timeout=120, what=release)
            return dg.MaterializeResult(
                metadata={"rows": index}, check_results=[dg.AssetCheckResult(passed=index >= 0)]
            )

        return counted

    return [build(index) for index in range(count)]


def instance_at(home: Path, config: str, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    (home / "dagster.yaml").write_text(config)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.from_config(str(home))


def latest_run(instance: dg.DagsterInstance, key: list[str]) -> str:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    assert event is not None
    return event.run_id


def test_a_home_moves_between_dagsters_storage_and_the_kept_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets = counted_assets("moved", 3)
    with instance_at(tmp_path, STOCK, monkeypatch) as stock:
        first = dg.materialize(assets, instance=stock).run_id
    with instance_at(tmp_path, KEPT, monkeypatch) as kept:
        assert isinstance(kept.event_log_storage, KeptSqliteEventLogStorage)
        assert latest_run(kept, ["moved", "a2"]) == first  # Dagster's history, read
        runs = [dg.materialize(assets, instance=kept).run_id for _ in range(KEPT_EVENT_LOG_FILES + 2)]
        engines = kept.event_log_storage._engines
        assert len(engines) == KEPT_EVENT_LOG_FILES and "index" in engines  # older runs' files closed
        assert len(kept.all_logs(runs[0])) == len(kept.all_logs(runs[-1])) > 0  # reopened when read
    with instance_at(tmp_path, STOCK, monkeypatch) as stock:
        assert latest_run(stock, ["moved", "a2"]) == runs[-1]
        assert {r.run_id for r in stock.get_runs()} == {first, *runs}
        check = stock.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey(["moved", "a1"]), "positive")]
        )
        assert next(iter(check.values())).run_id == runs[-1]
        assert [e.dagster_event_type for e in stock.all_logs(runs[-1]) if e.is_dagster_event][-1] == (
            dg.DagsterEventType.RUN_SUCCESS
        )


def materializing(home: Path, prefix: str, count: int, release: Path | None = None) -> subprocess.Popen:
    """Another process materializing `count` assets into `home`'s instance (the first waiting
    for `release` to exist, when given), as a run worker of `dagster dev` does."""
    code = (
        "import sys, dagster as dg\n"
        "from tests.ops.test_instance_storage import counted_assets\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    sys.exit(0 if dg.materialize(counted_assets(sys.argv[1], int(sys.argv[2]), sys.argv[3] or None),"
        " instance=instance).success else 1)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, prefix, str(count), str(release or "")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
    )


def test_instances_of_other_processes_write_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes on one home materialize at once: every run and every event stored, none
    lost to a locked database."""
    # The home is made first, as `dagster dev` makes it before starting its processes (two
    # processes creating a new home's databases at once race in Dagster's own code).
    instance_at(tmp_path, KEPT, monkeypatch).dispose()
    processes = {prefix: materializing(tmp_path, prefix, 20) for prefix in ("left", "right")}
    assert {prefix: process.wait(timeout=300) for prefix, process in processes.items()} == {
        "left": 0,
        "right": 0,
    }
    with instance_at(tmp_path, KEPT, monkeypatch) as instance:
        for prefix in processes:
            run_id = latest_run(instance, [prefix, "a19"])
            stored = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            assert len(stored) == 20, prefix


def test_a_runs_live_log_view_wakes_before_the_run_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI follows a run's log through the storage's `watch`; with kept connections the run's
    events sit in its WAL file until a checkpoint, and the watcher must wake on that file too."""
    release = tmp_path / "release"
    with instance_at(tmp_path, KEPT, monkeypatch) as ui:
        worker = materializing(tmp_path, "live", 1, release)
        try:
            wait_until(lambda: bool(ui.get_runs(limit=1)), timeout=120, what="the run")
            run_id = ui.get_runs(limit=1)[0].run_id
            wait_until(
                lambda: bool(ui.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)),
                timeout=120,
                what="its step started",
            )
            seen: list[dg.DagsterEventType | None] = []
            ui.event_log_storage.watch(
                run_id, None, lambda entry, _cursor: seen.append(entry.dagster_event_type)
            )
            # a write to the run's log while its step waits (another process, as the daemon's)
            with dg.DagsterInstance.from_config(str(tmp_path)) as other:
                other.report_engine_event("a write while the step waits", other.get_run_by_id(run_id))
            wait_until(
                lambda: dg.DagsterEventType.STEP_START in seen,
                timeout=30,
                what="the watcher to wake while the run goes on",
            )
        finally:
            release.touch()
            assert worker.wait(timeout=120) == 0
