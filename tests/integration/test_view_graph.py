"""The SQL folder as a graph: load errors name file and line; a failing object fails alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cht_assets.defs import views
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.sqlgraph.errors import SqlGraphError
from tests.integration.pipeline import SUFFIXES, new_deployment
from tests.support.dagster import dagster_instance, location_assets


@pytest.fixture
def sql_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sql"
    shutil.copytree(views.SQL_ROOT, root)
    monkeypatch.setattr(views, "SQL_ROOT", root)
    return root


def materialize_one_health_center(
    couch_url: str, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list, dg.ExecuteInProcessResult]:
    """A new deployment of one health center, its raw and view assets materialized in one run
    (failures kept in the result)."""
    deployment = new_deployment(couch_url, pg_url, monkeypatch)
    for suffix in SUFFIXES:
        deployment.client(suffix).create_db()
    deployment.client().bulk_docs([{"_id": "hc", "type": "health_center", "name": "Area"}])
    resources = {"couchdb": CouchDBResource(url=couch_url), "postgres": PostgresResource(url=pg_url)}
    with dagster_instance() as instance:
        assets = location_assets()
        return assets, dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False)


def test_broken_sql_fails_loading_with_file_and_line(sql_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL", "postgresql://nobody@127.0.0.1:1/none")  # no formviews: load only
    broken = sql_root / "useviews" / "useview_broken.sql"
    broken.write_text("-- materialized: view\nSELECT uuid,\n  FROM WHERE contactview_metadata (\n")
    with pytest.raises(SqlGraphError) as raised:
        views.build_view_assets()
    assert str(broken) in str(raised.value) and ":3" in str(raised.value)

    broken.write_text("-- materialized: view\nSELECT uuid\nFROM contactview_nowhere\n")
    with pytest.raises(SqlGraphError, match=r"useview_broken\.sql:3: unknown relation 'contactview_nowhere'"):
        views.build_view_assets()


def test_one_failing_object_fails_alone(sql_root: Path, couch_server, pg_url: str, monkeypatch) -> None:
    (sql_root / "useviews" / "useview_broken.sql").write_text(
        "-- materialized: view\nSELECT uuid, no_such_column FROM contactview_metadata\n"
    )
    (sql_root / "useviews" / "useview_after_broken.sql").write_text(
        "-- materialized: view\nSELECT uuid FROM useview_broken\n"
    )
    assets, result = materialize_one_health_center(couch_server.url, pg_url, monkeypatch)
    (failure,) = result.get_step_failure_events()
    done = {event.asset_key.path[-1] for event in result.get_asset_materialization_events()}
    # One step builds the view layers: the broken object fails it, after every object that does
    # not read the broken one was built. useview_pregnancy reads formview_pregnancy, which exists
    # once a pregnancy form is synced: until then it waits, it does not fail.
    assert failure.step_key == views.VIEW_LAYERS_OP
    message = failure.step_failure_data.error.message
    assert "useview_broken: " in message and "no_such_column" in message
    assert "useview_after_broken" not in message  # not attempted: it reads the broken one
    layers = [
        a for a in assets if isinstance(a, dg.AssetsDefinition) and a.node_def.name == views.VIEW_LAYERS_OP
    ]
    specs = {spec.key.path[-1]: spec for asset in layers for spec in asset.specs}
    waiting = {name for name, spec in specs.items() if spec.tags.get(views.WAITING_TAG)}
    assert "useview_pregnancy" in waiting and not waiting & done
    assert {"useview_broken", "useview_after_broken"}.isdisjoint(done)
    assert set(specs) - waiting - {"useview_broken", "useview_after_broken"} <= done
    assert {"contactview_metadata", "contactview_hierarchy", "useview_chw_activity", "form_metadata"} <= done


def test_a_failed_blocking_check_holds_what_reads_the_object_in_the_same_run(
    sql_root: Path, couch_server, pg_url: str, monkeypatch
) -> None:
    """The view layers are one step: an object whose blocking check fails is materialized (its
    check says what is wrong) but what reads it is not built in that run; the rest is, and the
    run fails naming the check."""
    (sql_root / "useviews" / "useview_doubled.sql").write_text(
        "-- materialized: view\n-- unique_key: uuid\n"
        "SELECT uuid FROM contactview_metadata UNION ALL SELECT uuid FROM contactview_metadata\n"
    )
    (sql_root / "useviews" / "useview_reads_doubled.sql").write_text(
        "-- materialized: view\nSELECT uuid FROM useview_doubled\n"
    )
    _, result = materialize_one_health_center(couch_server.url, pg_url, monkeypatch)
    done = {event.asset_key.path[-1] for event in result.get_asset_materialization_events()}
    failed_checks = {
        (c.asset_key.path[-1], c.check_name) for c in result.get_asset_check_evaluations() if not c.passed
    }
    (failure,) = result.get_step_failure_events()
    assert not result.success and failure.step_key == views.VIEW_LAYERS_OP
    assert "useviews/useview_doubled: unique_key" in failure.step_failure_data.error.message
    assert ("useview_doubled", "unique_key") in failed_checks
    assert "useview_doubled" in done and "useview_reads_doubled" not in done
    assert {"contactview_metadata", "contactview_hierarchy", "useview_chw_activity", "useview_user"} <= done
    with psycopg.connect(pg_url) as conn:
        held = conn.execute("SELECT to_regclass('useview_reads_doubled')").fetchone()[0]
    assert held is None  # never built
