"""The pure parts, no server: dashboards YAML, bundle documents, access.yaml, Rison, the asset graph."""

from __future__ import annotations

import io
import zipfile

import dagster as dg
import pytest
import yaml

from cht_assets.bi.access_config import AccessError, load_access, parse_access
from cht_assets.bi.bundle import BundleError, zip_bundle
from cht_assets.bi.client import rison
from cht_assets.bi.dashboard_specs import check_against_datasets, load_dashboards, parse_dashboard
from cht_assets.bi.dashboards import chart_document, dashboard_document
from cht_assets.bi.database import DatabaseConnection
from cht_assets.bi.datasets import Column, Dataset, DatasetSource
from cht_assets.bi.rls import rls_clause
from cht_assets.defs.resources import PostgresResource
from cht_assets.defs.superset import ACCESS_KEY, DATABASE_KEY, SupersetResource, build_superset_assets
from tests.superset import standin
from tests.superset.conftest import SOURCES

DATABASE = DatabaseConnection("CHT analytics", "127.0.0.1", 5432, "cht", "reader", "p@ss:word/")


def datasets() -> dict[str, Dataset]:
    return {
        view: Dataset(
            DatasetSource(("useviews", view), "public", view),
            tuple(
                Column(name, pg_type.upper(), pg_type in ("date", "timestamptz")) for name, pg_type in columns
            ),
        )
        for view, columns in standin.COLUMNS.items()
    }


def test_shipped_dashboards_parse_and_match_the_views() -> None:
    specs = load_dashboards()
    assert {spec.slug for spec in specs} == {
        "chw-activity",
        "pregnancy-and-births",
        "population",
        "data-freshness",
        "targets",
        "tasks",
    }
    for spec in specs:
        check_against_datasets(spec, datasets())
        assert {c.viz_type for c in spec.charts} <= {
            "big_number_total",
            "echarts_timeseries_bar",
            "table",
            "pie",
        }


def test_documents_hold_uuids_not_ids_and_mask_the_password() -> None:
    spec = next(s for s in load_dashboards() if s.slug == "chw-activity")
    document = dashboard_document(spec, datasets(), DATABASE)
    charts = [v for v in document["position"].values() if isinstance(v, dict) and v.get("type") == "CHART"]
    assert {c["meta"]["uuid"] for c in charts} == {spec.chart_uuid(c) for c in spec.charts}
    for flt in document["metadata"]["native_filter_configuration"]:
        assert "datasetUuid" in flt["targets"][0] and "datasetId" not in flt["targets"][0]
    assert DATABASE.sqlalchemy_uri() == "postgresql+psycopg2://reader:XXXXXXXXXX@127.0.0.1:5432/cht"
    assert DATABASE.sqlalchemy_uri(masked=False).startswith("postgresql+psycopg2://reader:p%40ss%3Aword%2F@")
    assert "p@ss" not in repr(DATABASE)


def test_a_rerun_builds_the_same_bytes() -> None:
    spec = load_dashboards()[0]
    build = lambda: zip_bundle(  # noqa: E731
        {
            f"charts/{spec.chart_uuid(c)}.yaml": chart_document(
                spec, c, "00000000-0000-0000-0000-000000000000"
            )
            for c in spec.charts
        }
    )
    first = build()
    assert first == build()
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert "cht_assets/metadata.yaml" in names and all(n.startswith("cht_assets/") for n in names)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"charts": [{"key": "a", "type": "sunburst", "dataset": "x"}]}, "is not one of"),
        ({"charts": [{"key": "a", "type": "pie", "dataset": "x", "metric": "COUNT(*)"}]}, "one `groupby`"),
        ({"layout": [["reports"], ["reports"]]}, "once"),
        ({"layout": [["nope"]]}, "unknown charts"),
    ],
)
def test_dashboard_mistakes_name_the_file_and_chart(change: dict, message: str) -> None:
    data = yaml.safe_load(
        """
        slug: s
        title: T
        charts:
          - {key: reports, type: big_number_total, dataset: useview_chw_activity, metric: {label: R, sql: SUM(reports)}}
        """
    )
    data.update(change)
    with pytest.raises(BundleError, match=message) as error:
        parse_dashboard(data, "broken.yaml")
    assert "broken.yaml" in str(error.value)


def test_unknown_columns_are_caught_before_superset_is_touched() -> None:
    spec = parse_dashboard(
        {
            "slug": "s",
            "title": "T",
            "charts": [{"key": "k", "type": "table", "dataset": "useview_population", "columns": ["nope"]}],
        },
        "x.yaml",
    )
    with pytest.raises(BundleError, match="no column"):
        check_against_datasets(spec, datasets())


def test_rls_clause_quotes_the_place() -> None:
    assert rls_clause(["a'b"]) == "area_uuids @> ARRAY['a''b']::text[]"
    assert rls_clause(["y", "x"]) == "(area_uuids @> ARRAY['x']::text[] OR area_uuids @> ARRAY['y']::text[])"
    with pytest.raises(AccessError):
        rls_clause([])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"managers": [{"role": "Gamma", "places": ["x"]}]}, "built-in"),
        ({"managers": [{"user": "u"}]}, "at least one place"),
        ({"managers": [{"user": "u", "places": [{"ward": "x"}]}]}, "neither `uuid` nor a level"),
        ({"postgres": {"view_schemas": ["raw"]}}, "must not include"),
        ({"managers": [{"user": "u", "role": "r", "places": ["x"]}]}, "exactly one"),
    ],
)
def test_access_mistakes_are_refused(data: dict, message: str) -> None:
    with pytest.raises(AccessError, match=message):
        parse_access(data)


def test_shipped_access_yaml_parses() -> None:
    config = load_access()
    assert "raw" not in config.view_schemas


def test_rison() -> None:
    assert rison({"filters": [{"col": "slug", "opr": "eq", "value": "chw-activity"}]}) == (
        "(filters:!((col:slug,opr:eq,value:chw-activity)))"
    )
    assert rison({"value": "it's a 'test'!"}) == "(value:'it!'s a !'test!'!!')"
    assert rison([1, True, None, "1abc"]) == "!(1,!t,!n,'1abc')"


def test_asset_graph() -> None:
    assets = build_superset_assets(SOURCES)
    defs = dg.Definitions(
        assets=assets, resources={"superset": SupersetResource(), "postgres": PostgresResource()}
    )
    dg.Definitions.validate_loadable(defs)
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    ours = {key: spec for key, spec in specs.items() if key.path[0] == "superset"}
    assert len(ours) == 1 + len(SOURCES) + len(load_dashboards()) + 1
    for spec in ours.values():
        assert spec.group_name == "superset" and spec.kinds == {"superset"}
    dataset = specs[dg.AssetKey(["superset", "datasets", "useview_population"])]
    assert {d.asset_key for d in dataset.deps} == {
        DATABASE_KEY,
        dg.AssetKey(["useviews", "useview_population"]),
    }
    dashboard = specs[dg.AssetKey(["superset", "dashboards", "data_freshness"])]
    assert {d.asset_key.path[-1] for d in dashboard.deps} == {
        "useview_data_freshness",
        "useview_refresh_status",
    }
    # Access waits for the database connection only, never for a dataset or a dashboard.
    assert {d.asset_key for d in specs[ACCESS_KEY].deps} == {DATABASE_KEY}
    with pytest.raises(BundleError, match="not among the published datasets"):
        build_superset_assets(SOURCES[:1])
    used = [s for s in SOURCES if s.relation in ("useview_chw_activity", "useview_user")]
    partial = build_superset_assets(used, dashboards=["chw-activity"])
    assert len(partial) == 1 + len(used) + 1 + 1
