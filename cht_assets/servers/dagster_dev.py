"""`dagster dev` (webserver + daemon + code server) on a free 127.0.0.1 port, driven through
GraphQL the way the UI is, and stopped through its process group (SIGINT, then SIGKILL).

Used by tests/ops/test_dagster_dev.py and bench/latency.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from cht_assets.instance_storage import KEPT_SQLITE_STORAGE
from cht_assets.servers.couchdb import PROJECT_ROOT
from cht_assets.servers.process import free_port, wait_until

LOCATION = "cht_assets"
REPOSITORY = "__repository__"
ASSET_JOB = "__ASSET_JOB"
# Runs dequeued every second (default 5 s).
INSTANCE_SETTINGS = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
freshness:
  enabled: true
"""
# ... with SQLite storage in DAGSTER_HOME, its connections kept.
DAGSTER_YAML = yaml.safe_dump(KEPT_SQLITE_STORAGE, sort_keys=False) + INSTANCE_SETTINGS
# Compute logs off: else each run mirrors its stdout/stderr through a `tail -F` subprocess whose
# teardown may wait 30 s on a loaded machine (the UI shows no step output then).
NO_COMPUTE_LOGS = """\
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
  }
}
"""
RUNS = """
query Runs($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    ... on Runs { results { runId status jobName startTime endTime tags { key value }
                            assetSelection { path } } }
  }
}
"""


@dataclass
class DagsterDev:
    process: subprocess.Popen
    port: int
    home: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": dict(variables or {})}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def launch(
        self,
        *,
        job: str = ASSET_JOB,
        assets: list[list[str]] | None = None,
        checks: list[tuple[list[str], str]] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> str:
        selector: dict[str, Any] = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": job,
        }
        if assets is not None:
            selector["assetSelection"] = [{"path": path} for path in assets]
        if checks is not None:
            selector["assetCheckSelection"] = [
                {"assetKey": {"path": path}, "name": name} for path, name in checks
            ]
        params = {"selector": selector, "runConfigData": dict(config or {})}
        result = self.graphql(LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launch failed: {result}")
        return result["run"]["runId"]

    def runs(self, filter: Mapping[str, Any] | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self.graphql(RUNS, {"filter": dict(filter or {}), "limit": limit})["runsOrError"]["results"]

    def wait_for_run(self, run_id: str, timeout: float = 180) -> dict[str, Any]:
        return self.wait(
            lambda: next((r for r in self.runs({"runIds": [run_id]}) if r["status"] in FINISHED), None),
            timeout,
            f"run {run_id}",
        )

    def wait_idle(self, timeout: float = 240) -> None:
        """Until no run is queued or in progress."""
        active = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
        self.wait(lambda: not self.runs({"statuses": active}), timeout, "no active runs")

    def wait(self, found: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_alive()
            value = found()
            if value:
                return value
            time.sleep(1)
        raise TimeoutError(f"{what}: not within {timeout:.0f}s\n{self.tail()}")

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {self.process.returncode}\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        stop_dagster_dev(self.process)


def stop_dagster_dev(process: subprocess.Popen) -> None:
    """SIGINT to the process group it leads (webserver, daemon, code server), then SIGKILL."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def location_loaded(dev: DagsterDev) -> bool:
    try:
        data = dev.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
    except (requests.RequestException, RuntimeError):
        return False
    entries = data["workspaceOrError"]["locationEntries"]
    for entry in entries:
        if entry["locationOrLoadError"] and entry["locationOrLoadError"]["__typename"] == "PythonError":
            raise RuntimeError(f"code location failed to load: {entry['locationOrLoadError']['message']}")
    return any(
        e["name"] == LOCATION and e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries
    )


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_dagster_dev(
    home: Path,
    env: Mapping[str, str],
    *,
    port: int | None = None,
    timeout: float = 180,
    compute_logs: bool = False,
) -> DagsterDev:
    """Start `dagster dev -w workspace.yaml` with `env` on top of ours; returns once the code
    location is loaded. A `home` without a dagster.yaml gets DAGSTER_YAML (and no compute-log
    capture unless `compute_logs`)."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DAGSTER_YAML + ("" if compute_logs else NO_COMPUTE_LOGS))
    port = port or free_port()
    log = home / "dagster-dev.log"
    command = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**os.environ, **env, "DAGSTER_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=default_sigint,  # a shell that backgrounds us may have ignored SIGINT
        )
    dev = DagsterDev(process, port, home, log)
    try:
        wait_until(
            lambda: dev.assert_alive() or location_loaded(dev), timeout=timeout, what="dagster dev", log=log
        )
    except BaseException:
        dev.stop()
        raise
    return dev
