"""Dagster in the tests: one kind of instance, one way to materialize, the code location's assets.

The instance stores as `dagster dev`'s does (cht_assets.instance_storage) and captures no
compute logs. Dagster's default capture redirects the process's stdout
and stderr into a file that a `tail -F` subprocess mirrors back; tearing that down waits up to
30 s per run for the subprocess, which a loaded machine hit, and a run in a thread outlived the
test's join. Nothing in the tests reads captured logs: the event log holds what they inspect.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg

from cht_assets.defs import raw, views
from cht_assets.defs.dictionary_page import build_dictionary_assets
from cht_assets.instance_storage import KEPT_SQLITE_STORAGE

NO_COMPUTE_LOGS = {
    "compute_logs": {
        "module": "dagster._core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    }
}


@contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """A throwaway instance (temporary DAGSTER_HOME): the product's storage, no compute-log capture."""
    with dg.instance_for_test(overrides={**NO_COMPUTE_LOGS, **KEPT_SQLITE_STORAGE}) as instance:
        yield instance


def location_assets(*, dictionary: bool = False) -> list[dg.AssetSpec | dg.AssetsDefinition]:
    """Raw and view assets as the code location builds them from the environment (formviews
    of the forms already synced), and the data dictionary of those views when asked."""
    catalog = views.load_catalog()
    extra = build_dictionary_assets(catalog) if dictionary else []
    return [*raw.build_raw_assets(), *views.build_view_assets(catalog), *extra]


def materialize(
    assets: Sequence[dg.AssetSpec | dg.AssetsDefinition],
    resources: dict[str, Any],
    *,
    instance: dg.DagsterInstance | None = None,
    selection: Sequence[dg.AssetKey] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """One in-process run, in `instance` or in a fresh `dagster_instance()`."""
    if instance is None:
        with dagster_instance() as fresh:
            return materialize(
                assets, resources, instance=fresh, selection=selection, raise_on_error=raise_on_error
            )
    return dg.materialize(
        assets, resources=resources, instance=instance, selection=selection, raise_on_error=raise_on_error
    )
