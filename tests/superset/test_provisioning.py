"""Provisioning against a real Superset: idempotent, numbers right, columns and charts follow the code."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from cht_assets.bi.client import SupersetClient
from cht_assets.bi.dashboards import provision_dashboard
from cht_assets.bi.datasets import DatasetSource, dataset_uuid, read_dataset
from cht_assets.defs.superset import (
    ACCESS_KEY,
    DATABASE_KEY,
    build_superset_assets,
    dashboard_key,
    dataset_key,
)
from tests.superset import expect, standin
from tests.superset.conftest import SOURCES, Analytics, Provisioning
from tests.superset.expect import percent
from tests.support import dagster as support

pytestmark = pytest.mark.superset


def chart_ids(admin: SupersetClient, slug: str) -> dict[str, int]:
    dashboard = admin.get(f"/api/v1/dashboard/{slug}")["result"]
    return {
        chart["slice_name"]: chart["id"]
        for chart in admin.get(f"/api/v1/dashboard/{dashboard['id']}/charts")["result"]
    }


def test_two_runs_leave_each_object_exactly_once(admin: SupersetClient, provisioned: Provisioning) -> None:
    first, second = provisioned.runs
    assert set(first) == set(second)
    for key in first:  # same Superset ids on the second run: updated in place
        if "superset_id" in first[key]:
            assert first[key]["superset_id"] == second[key]["superset_id"], key
    databases = [d for d in admin.list_all("database") if d["database_name"] == provisioned.database.name]
    assert len(databases) == 1
    for spec in provisioned.specs:
        found = admin.find("dashboard", slug=spec.slug)
        assert len(found) == 1, spec.slug
        charts = admin.get(f"/api/v1/dashboard/{found[0]['id']}/charts")["result"]
        assert sorted(c["slice_name"] for c in charts) == sorted(c.title for c in spec.charts)
        for chart in spec.charts:
            assert len(admin.find("chart", uuid=spec.chart_uuid(chart))) == 1
    for source in SOURCES:
        assert len(admin.find("dataset", uuid=dataset_uuid(provisioned.database, source))) == 1
    assert second[DATABASE_KEY]["sqlalchemy_uri"].count("XXXXXXXXXX") == 1  # password masked
    assert second[ACCESS_KEY]["created"] == [] and second[ACCESS_KEY]["removed"] == []


def test_metadata_holds_no_secret(provisioned: Provisioning, superset_env: dict[str, str]) -> None:
    text = repr(provisioned.runs)
    for key, value in superset_env.items():
        if "PASSWORD" in key or key.startswith("CHT_TEST_PW"):
            assert value not in text


def test_every_chart_returns_what_plain_sql_computes(
    admin: SupersetClient, provisioned: Provisioning, analytics: Analytics
) -> None:
    checked = 0
    for spec in provisioned.specs:
        ids = chart_ids(admin, spec.slug)
        for chart in spec.charts:
            result = admin.get(f"/api/v1/chart/{ids[chart.title]}/data/")["result"][0]
            labels, want = expect.expected(analytics.url, chart)
            got = expect.actual(labels, result["data"])
            assert want, f"{spec.slug}/{chart.key}: the stand-in rows should give this chart data"
            assert expect.same(got, want), f"{spec.slug}/{chart.key}:\n{got}\n!=\n{want}"
            checked += 1
    assert checked == sum(len(spec.charts) for spec in provisioned.specs)


def test_headline_numbers_match_python(
    admin: SupersetClient, provisioned: Provisioning, analytics: Analytics
) -> None:
    rows = analytics.data.rows

    def number(slug: str, title: str) -> float:
        data = admin.get(f"/api/v1/chart/{chart_ids(admin, slug)[title]}/data/")["result"][0]["data"]
        return next(iter(data[0].values()))

    activity = rows["useview_chw_activity"]
    assert number("chw-activity", "Reports submitted") == sum(r["reports"] for r in activity)
    assert number("chw-activity", "Active CHWs") == len({r["chw_uuid"] for r in activity})
    pregnancy = rows["useview_pregnancy"]
    assert number("pregnancy-and-births", "Pregnancies registered") == len(pregnancy)
    assert number("pregnancy-and-births", "Deliveries") == sum(1 for r in pregnancy if r["delivered"])
    assert number("pregnancy-and-births", "Pregnancies with 4+ ANC visits") == sum(
        1 for r in pregnancy if r["anc_visits"] >= 4
    )
    assert number("pregnancy-and-births", "Deliveries in a health facility") == sum(
        1 for r in pregnancy if r["delivered"] and r["delivery_place"] == "health_facility"
    )
    today = date.today()
    assert number("pregnancy-and-births", "Past EDD, not delivered") == sum(
        1 for r in pregnancy if not r["delivered"] and r["edd"] < today
    )
    tasks = rows["useview_task"]
    assert number("tasks", "Tasks due") == len(tasks)
    assert number("tasks", "Overdue tasks") == sum(
        1 for r in tasks if r["state"] == "Ready" and r["end_date"] < today
    )
    completed = sum(1 for r in tasks if r["state"] == "Completed")
    assert number("tasks", "Completion rate (%)") == float(percent(completed, len(tasks)))
    targets = rows["useview_target"]
    assert number("targets", "CHW targets that met their goal") == sum(1 for r in targets if r["met_goal"])
    assert number("targets", "CHWs with targets") == len({r["user_name"] for r in targets})
    users = rows["useview_user"]
    assert number("chw-activity", "Users active in the last 7 days") == sum(
        1 for r in users if r["active_7d"]
    )
    assert number("chw-activity", "Users not synced in 7 days") == sum(
        1
        for r in users
        if r["last_telemetry_date"] is None or r["last_telemetry_date"] < today - timedelta(days=7)
    )
    population = rows["useview_population"]
    assert number("population", "Persons") == sum(r["persons"] for r in population)
    assert number("population", "Children under 5") == sum(
        r["persons"] for r in population if r["age_band"] == "00-04"
    )
    by_sex = admin.get(f"/api/v1/chart/{chart_ids(admin, 'population')['Persons by sex']}/data/")["result"][
        0
    ]["data"]
    assert {r["sex"]: r["Persons"] for r in by_sex} == {
        sex: sum(r["persons"] for r in population if r["sex"] == sex) for sex in standin.SEXES
    }
    freshness = rows["useview_data_freshness"]
    assert number("data-freshness", "Pending changes") == sum(r["pending"] for r in freshness)
    assert number("data-freshness", "Largest sync lag (seconds)") == max(r["lag_seconds"] for r in freshness)


def materialize_dataset(provisioned: Provisioning, source: DatasetSource) -> dict:
    """The dataset's own Dagster asset (it also re-grants SELECT on a re-created view)."""
    assets = build_superset_assets(SOURCES, access_path=provisioned.access_path)
    with support.dagster_instance() as instance:
        result = dg.materialize(
            assets, resources=provisioned.resources, instance=instance, selection=[dataset_key(source)]
        )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_a_column_added_to_a_view_appears_in_its_dataset(
    admin: SupersetClient, provisioned: Provisioning, analytics: Analytics
) -> None:
    view = "useview_refresh_status"
    source = next(s for s in SOURCES if s.relation == view)
    with psycopg.connect(analytics.url) as conn:
        conn.execute(standin.view_sql(view, ["'demo'::text AS deployment"]))
    try:
        metadata = materialize_dataset(provisioned, source)
        assert metadata["superset_id"] == provisioned.runs[0][dataset_key(source)]["superset_id"]
        columns = [
            c["column_name"]
            for c in admin.get(f"/api/v1/dataset/{metadata['superset_id']}")["result"]["columns"]
        ]
        assert columns.count("deployment") == 1
    finally:  # drop the column again: the view is re-created, so its grants go with it
        with psycopg.connect(analytics.url) as conn:
            conn.execute(
                sql.SQL("DROP VIEW {}.{}").format(sql.Identifier(standin.VIEW_SCHEMA), sql.Identifier(view))
            )
            conn.execute(standin.view_sql(view))
        metadata = materialize_dataset(provisioned, source)
    columns = [
        c["column_name"] for c in admin.get(f"/api/v1/dataset/{metadata['superset_id']}")["result"]["columns"]
    ]
    assert "deployment" not in columns
    chart = next(c for c in admin.find("chart", datasource_id=metadata["superset_id"]))
    assert admin.get(f"/api/v1/chart/{chart['id']}/data/")["result"][0]["data"]  # still readable


def test_dataset_columns_carry_the_warehouse_comments(
    admin: SupersetClient, provisioned: Provisioning, analytics: Analytics
) -> None:
    """Each column's description is its COMMENT in PostgreSQL; its verbose name the question
    label of a formview column's comment, else the readable column name."""
    view = "useview_refresh_status"
    source = next(s for s in SOURCES if s.relation == view)
    relation = sql.Identifier(standin.VIEW_SCHEMA, view)
    comments = {
        "object": "The view-layer object the pipeline maintains.",
        "layer": "Which layer? (select1, field group/layer). Choices: base = Base; useviews = Use views",
    }

    def comment(texts: dict[str, str | None]) -> None:
        with psycopg.connect(analytics.url) as conn:
            for column, text in texts.items():
                conn.execute(
                    sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                        relation, sql.Identifier(column), sql.Literal(text)
                    )
                )

    comment(comments)
    try:
        metadata = materialize_dataset(provisioned, source)
        columns = {
            c["column_name"]: c
            for c in admin.get(f"/api/v1/dataset/{metadata['superset_id']}")["result"]["columns"]
        }
        assert columns["object"]["description"] == comments["object"]
        assert columns["object"]["verbose_name"] == "Object"
        assert columns["layer"]["description"] == comments["layer"]
        assert columns["layer"]["verbose_name"] == "Which layer?"
        assert columns["refreshed_at"]["description"] is None
        assert columns["refreshed_at"]["verbose_name"] == "Refreshed at"
    finally:
        comment(dict.fromkeys(comments))
        materialize_dataset(provisioned, source)


def test_a_chart_removed_from_yaml_leaves_the_dashboard(
    admin: SupersetClient, provisioned: Provisioning, analytics: Analytics
) -> None:
    spec = next(s for s in provisioned.specs if s.slug == "data-freshness")
    dropped = next(c for c in spec.charts if c.key == "pending_by_source")
    smaller = dataclasses.replace(
        spec,
        charts=tuple(c for c in spec.charts if c.key != dropped.key),
        rows=tuple(tuple(k for k in row if k != dropped.key) for row in spec.rows),
    )
    datasets = {s.relation: read_dataset(analytics.url, s) for s in SOURCES}
    try:
        result = provision_dashboard(admin, provisioned.database, smaller, datasets)
        assert result.details == {**result.details, "charts": len(spec.charts) - 1, "charts_removed": 1}
        assert dropped.title not in chart_ids(admin, spec.slug)
        assert admin.find("chart", uuid=spec.chart_uuid(dropped)) == []
        assert result.id == provisioned.runs[0][dashboard_key(spec)]["superset_id"]
    finally:
        restored = provision_dashboard(admin, provisioned.database, spec, datasets)
    assert restored.details["charts"] == len(spec.charts)
    assert len(admin.find("dashboard", slug=spec.slug)) == 1
