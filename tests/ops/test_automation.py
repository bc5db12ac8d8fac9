"""The automation conditions of the real code location, evaluated tick by tick as the daemon
would (dg.evaluate_automation_conditions), with materializations reported in between."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest

from cht_assets.servers.process import free_port
from tests.support.dagster import dagster_instance

# Without forms these wait (their inputs are generated over the absent formviews).
MATERNAL_VIEWS = ("useview_pregnancy", "useview_delivery", "useview_death")
MATERNAL_INPUTS = ("useinput_pregnancy_registration", "useinput_delivery_report", "useinput_death_report")


@pytest.fixture(params=["0"])
def defs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.Definitions]:
    """The code location; the param is KEEPALIVE_MINUTES."""
    monkeypatch.setenv("POSTGRES_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none")  # no formviews
    monkeypatch.setenv("COUCHDB_DBS", "medic,medic-sentinel")
    monkeypatch.setenv("KEEPALIVE_MINUTES", request.param)
    sys.modules.pop("cht_assets.definitions", None)
    yield importlib.import_module("cht_assets.definitions").defs
    sys.modules.pop("cht_assets.definitions", None)


class Ticks:
    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None
        self.graph = defs.resolve_asset_graph()

    def tick(self, at: datetime | None = None) -> set[str]:
        """The groups of the assets requested on one tick (the daemon launches them as one run)."""
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=at
        )
        self.cursor = result.cursor
        self.requested = {
            key for key in self.graph.materializable_asset_keys if result.get_num_requested(key)
        }
        return {self.graph.get(key).group_name for key in self.requested}

    def succeed(self, keys: set[dg.AssetKey]) -> None:
        """Materializations of `keys` in the order a run makes them, and every blocking check on
        them passing."""
        for key in [key for key in self.graph.toposorted_asset_keys if key in keys]:
            self.instance.report_runless_asset_event(dg.AssetMaterialization(key))
            for check in self.graph.get_check_keys_for_assets({key}):
                if self.graph.get(check).blocking:
                    self.instance.report_runless_asset_event(
                        dg.AssetCheckEvaluation(asset_key=key, check_name=check.name, passed=True)
                    )

    def keys(self, *groups: str) -> set[dg.AssetKey]:
        return {
            key for key in self.graph.materializable_asset_keys if self.graph.get(key).group_name in groups
        }


def test_views_follow_the_raw_layer_and_superset_follows_the_views_in_runs_of_its_own(
    defs: dg.Definitions,
) -> None:
    views = ("base", "compat", "functions", "contactviews", "formviews", "useviews", "dictionary")
    with dagster_instance() as instance:
        ticks = Ticks(defs, instance)
        # First start, nothing built: what needs nothing upstream is built (raw is the sensor's).
        assert ticks.tick() == {"functions", "superset", "useviews"}
        assert dg.AssetKey(["superset", "database"]) in ticks.requested
        ticks.succeed(ticks.requested)
        # Superset follows what exists (the one use view without raw upstream); the rest waits
        # for the raw layer.
        assert ticks.tick() == {"superset"}
        assert ticks.requested == {dg.AssetKey(["superset", "datasets", "useview_refresh_status"])}
        ticks.succeed(ticks.requested)
        assert ticks.tick() == set()
        ticks.succeed(ticks.keys("raw"))
        # Every view, in one run (dashboard_language() reads medic's translations); no Superset.
        assert ticks.tick() == set(views)
        ticks.succeed(ticks.requested)
        assert ticks.tick() == {"superset"}  # datasets and dashboards together
        built = {
            dg.AssetKey(["superset", "database"]),
            dg.AssetKey(["superset", "datasets", "useview_refresh_status"]),
        }
        # No forms here: the maternal use views wait, and so do their datasets and dashboard.
        # Access follows the database connection only (each dataset brings its own RLS).
        waiting = {
            *(dg.AssetKey(["superset", "datasets", view]) for view in MATERNAL_VIEWS),
            dg.AssetKey(["superset", "dashboards", "pregnancy_and_births"]),
            dg.AssetKey(["superset", "access"]),
        }
        assert ticks.requested == ticks.keys("superset") - built - waiting
        ticks.succeed(ticks.requested)
        assert ticks.tick() == set()

        # The update_seq sensor replicated medic: its views follow, then Superset.
        ticks.succeed({dg.AssetKey(["raw", "medic"])})
        assert ticks.tick() <= set(views)
        assert dg.AssetKey(["formviews", "form_metadata"]) in ticks.requested
        assert dg.AssetKey(["useviews", "useview_chw_activity"]) in ticks.requested
        ticks.succeed(ticks.requested)
        assert ticks.tick() == {"superset"}


def test_a_failed_blocking_check_holds_everything_downstream(defs: dg.Definitions) -> None:
    with dagster_instance() as instance:
        ticks = Ticks(defs, instance)
        ticks.succeed(
            ticks.keys(
                "raw",
                "compat",
                "functions",
                "contactviews",
                "formviews",
                "useviews",
                "dictionary",
                "superset",
            )
        )
        ticks.tick()
        form_metadata = dg.AssetKey(["formviews", "form_metadata"])
        instance.report_runless_asset_event(dg.AssetMaterialization(form_metadata))
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(asset_key=form_metadata, check_name="unique_key", passed=False)
        )
        ticks.tick()
        assert dg.AssetKey(["useviews", "useview_chw_activity"]) not in ticks.requested
        assert not [key for key in ticks.requested if key.path[0] == "superset"]


@pytest.mark.parametrize("defs", ["10"], indirect=True)
def test_keepalive_refreshes_an_idle_graph_in_two_runs(defs: dg.Definitions) -> None:
    views = {"base", "compat", "functions", "contactviews", "formviews", "useviews", "dictionary"}
    with dagster_instance() as instance:
        ticks = Ticks(defs, instance)
        everything = ticks.keys("raw", *views, "superset")
        ticks.succeed(everything)
        ticks.tick(datetime(2026, 1, 1, 12, 1, tzinfo=UTC))
        ticks.succeed(ticks.requested)
        assert ticks.tick(datetime(2026, 1, 1, 12, 4, tzinfo=UTC)) == set()
        # 12:05, Superset's keepalive (offset by half the period): the database connection and
        # access after it; the datasets follow their views, not the connection.
        assert ticks.tick(datetime(2026, 1, 1, 12, 6, tzinfo=UTC)) == {"superset"}
        assert ticks.requested == {dg.AssetKey(["superset", "database"]), dg.AssetKey(["superset", "access"])}
        ticks.succeed(ticks.requested)
        assert ticks.tick(datetime(2026, 1, 1, 12, 7, tzinfo=UTC)) == set()
        # 12:10: every raw replica, the roots, and every view after them, as one run (but the
        # use view waiting for forms this deployment lacks).
        assert ticks.tick(datetime(2026, 1, 1, 12, 11, tzinfo=UTC)) == {"raw", *views}
        waiting = {dg.AssetKey(["useviews", name]) for name in (*MATERNAL_VIEWS, *MATERNAL_INPUTS)}
        assert ticks.requested == everything - ticks.keys("superset") - waiting
        ticks.succeed(ticks.requested)
        assert ticks.tick(datetime(2026, 1, 1, 12, 12, tzinfo=UTC)) == {"superset"}


def test_an_upstream_update_on_the_tick_of_a_superset_request_or_run_is_not_lost(
    defs: dg.Definitions,
) -> None:
    """A dataset requested for one update of its view, or published just before the next, still
    follows that next update (a new form version's column): Dagster's since_last_handled would
    count it as served by the request or run it came after. Served, it is not requested again."""
    view = dg.AssetKey(["useviews", "useview_chw_activity"])
    dataset = dg.AssetKey(["superset", "datasets", "useview_chw_activity"])
    views = ("raw", "base", "compat", "functions", "contactviews", "formviews", "useviews", "dictionary")
    with dagster_instance() as instance:
        ticks = Ticks(defs, instance)
        ticks.succeed(ticks.keys(*views, "superset"))
        ticks.tick()

        def requested_once() -> None:
            ticks.tick()
            assert dataset in ticks.requested
            for _ in range(2):  # its run is on its way: nothing more
                ticks.tick()
                assert dataset not in ticks.requested

        ticks.succeed({view})
        requested_once()
        # The view updated again before the next tick: the request came before that update.
        ticks.succeed({view})
        ticks.tick()
        assert dataset in ticks.requested
        ticks.succeed({view})
        requested_once()
        # The dataset's run published, then the view updated again, both before the next tick.
        ticks.succeed({dataset})
        ticks.succeed({view})
        requested_once()
        # The dataset's run published after the view's update: served.
        ticks.succeed({view})
        ticks.succeed({dataset})
        ticks.tick()
        assert dataset not in ticks.requested
        assert ticks.tick() == set()
