"""A dashboard and its charts as bundle documents (form data as the chart editor saves it, the
grid layout, native filters), imported into Superset. A dashboard import replaces its chart
links; charts that left the YAML are deleted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cht_assets.bi.bundle import (
    BUNDLE_VERSION,
    BundleError,
    Provisioned,
    find_one,
    require_one,
    stable_uuid,
    zip_bundle,
)
from cht_assets.bi.client import JsonObject, SupersetClient
from cht_assets.bi.dashboard_specs import (
    GRID_COLUMNS,
    ChartSpec,
    DashboardSpec,
    FilterSpec,
    check_against_datasets,
    filter_dataset,
)
from cht_assets.bi.database import DatabaseConnection
from cht_assets.bi.datasets import Dataset, dataset_uuid

DEFAULT_HEIGHT = {
    "big_number_total": 25,
    "pie": 40,
    "echarts_timeseries_bar": 50,
    "table": 50,
}  # grid units of 8 px


def where_filters(chart: ChartSpec) -> list[JsonObject]:
    if not chart.where:
        return []
    return [
        {
            "expressionType": "SQL",
            "sqlExpression": chart.where,
            "clause": "WHERE",
            "subject": None,
            "operator": None,
            "comparator": None,
            "isExtra": False,
            "isNew": False,
            "filterOptionName": f"filter_{chart.key}",
        }
    ]


def x_axis_column(chart: ChartSpec) -> JsonObject:
    column: JsonObject = {
        "columnType": "BASE_AXIS",
        "sqlExpression": chart.x_axis,
        "label": chart.x_axis,
        "expressionType": "SQL",
    }
    if chart.time_grain:
        column["timeGrain"] = chart.time_grain
    return column


def chart_params(chart: ChartSpec) -> JsonObject:
    """form_data as the chart editor saves it, per chart type."""
    metrics = [m.adhoc() for m in chart.metrics]
    params: JsonObject = {
        "viz_type": chart.viz_type,
        "adhoc_filters": where_filters(chart),
        "time_range": "No filter",
        "row_limit": chart.row_limit,
        "color_scheme": "supersetColors",
        "extra_form_data": {},
    }
    if chart.viz_type == "big_number_total":
        params.update(metric=metrics[0], header_font_size=0.4, subheader_font_size=0.15, y_axis_format=",d")
    elif chart.viz_type == "pie":
        params.update(
            metric=metrics[0],
            groupby=list(chart.groupby),
            sort_by_metric=True,
            number_format="SMART_NUMBER",
            label_type="key_percent",
            show_labels=True,
            show_labels_threshold=5,
            show_legend=True,
            legendOrientation="top",
            outerRadius=70,
            innerRadius=30,
            donut=False,
            labels_outside=True,
        )
    elif chart.viz_type == "echarts_timeseries_bar":
        params.update(
            x_axis=chart.x_axis,
            metrics=metrics,
            groupby=list(chart.groupby),
            orientation="vertical",
            stack="Stack" if chart.groupby else None,
            order_desc=True,
            show_legend=True,
            rich_tooltip=True,
            y_axis_format="SMART_NUMBER",
            x_axis_time_format="smart_date",
            truncate_metric=True,
            annotation_layers=[],
        )
        if chart.time_grain:
            params["time_grain_sqla"] = chart.time_grain
    else:  # table
        raw = bool(chart.columns)
        params.update(
            query_mode="raw" if raw else "aggregate",
            all_columns=list(chart.columns),
            groupby=list(chart.groupby),
            metrics=metrics,
            percent_metrics=[],
            order_by_cols=[json.dumps([name, asc]) for name, asc in chart.order_by] if raw else [],
            order_desc=True,
            server_page_length=10,
            table_timestamp_format="smart_date",
            show_cell_bars=True,
            include_search=False,
            allow_render_html=False,  # cells hold names from CHT documents: text, never markup
        )
        if not raw and chart.order_by:
            name, asc = chart.order_by[0]
            params["timeseries_limit_metric"] = metric_by_label(chart, name)
            params["order_desc"] = not asc
    params.update(chart.options)
    return params


def metric_by_label(chart: ChartSpec, label: str) -> JsonObject:
    for metric in chart.metrics:
        if metric.label == label:
            return metric.adhoc()
    raise BundleError(f"chart {chart.key}: order_by names no metric labelled {label!r}")


def query_object(chart: ChartSpec) -> JsonObject:
    """The saved query (what `GET /api/v1/chart/{id}/data/` runs): plain grouped rows, no pivot."""
    metrics = [m.adhoc() for m in chart.metrics]
    columns: list[Any]
    orderby: list[list[Any]] = []
    if chart.viz_type == "echarts_timeseries_bar":
        columns = [x_axis_column(chart), *chart.groupby]
    elif chart.viz_type == "table" and chart.columns:
        columns = list(chart.columns)
        orderby = [[name, asc] for name, asc in chart.order_by]
    else:
        columns = list(chart.groupby)
    if metrics and not orderby and chart.viz_type != "echarts_timeseries_bar":
        if chart.order_by:
            name, asc = chart.order_by[0]
            orderby = [[metric_by_label(chart, name), asc]]
        else:
            orderby = [[metrics[0], False]]
    return {
        "filters": [],
        "extras": {"having": "", "where": f"({chart.where})" if chart.where else ""},
        "applied_time_extras": {},
        "columns": columns,
        "metrics": metrics or None,  # None, not []: a raw table must not GROUP BY its columns
        "orderby": orderby,
        "annotation_layers": [],
        "row_limit": chart.row_limit,
        "series_columns": list(chart.groupby) if chart.viz_type == "echarts_timeseries_bar" else [],
        "series_limit": 0,
        "order_desc": True,
        "url_params": {},
        "custom_params": {},
        "custom_form_data": {},
    }


def chart_document(spec: DashboardSpec, chart: ChartSpec, dataset_uuid_: str) -> JsonObject:
    params = chart_params(chart)
    query_context = {
        "datasource": {"id": 0, "type": "table"},  # the importer fills in the dataset's id
        "force": False,
        "queries": [query_object(chart)],
        "form_data": params,
        "result_format": "json",
        "result_type": "full",
    }
    return {
        "slice_name": chart.title,
        "description": chart.description,
        "certified_by": None,
        "certification_details": None,
        "viz_type": chart.viz_type,
        "params": params,
        "query_context": json.dumps(query_context, sort_keys=True),
        "cache_timeout": None,
        "uuid": spec.chart_uuid(chart),
        "version": BUNDLE_VERSION,
        "dataset_uuid": dataset_uuid_,
        "is_managed_externally": True,
        "external_url": None,
    }


def widths(count: int) -> list[int]:
    base = GRID_COLUMNS // count
    return [base] * (count - 1) + [GRID_COLUMNS - base * (count - 1)]


def placeholder_ids(spec: DashboardSpec) -> dict[str, int]:
    """Layout-local chart ids; the importer swaps them for real ones through `meta.uuid`."""
    return {chart.key: number for number, chart in enumerate(spec.charts, start=1)}


def position_document(spec: DashboardSpec) -> JsonObject:
    charts = {chart.key: chart for chart in spec.charts}
    ids = placeholder_ids(spec)
    rows = [f"ROW-{number}" for number in range(1, len(spec.rows) + 1)]
    position: JsonObject = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": rows, "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": spec.title}},
    }
    for row_id, keys in zip(rows, spec.rows, strict=True):
        chart_ids = [f"CHART-{key}" for key in keys]
        position[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": chart_ids,
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        row_height = max(charts[key].height or DEFAULT_HEIGHT[charts[key].viz_type] for key in keys)
        for chart_id, key, width in zip(chart_ids, keys, widths(len(keys)), strict=True):
            chart = charts[key]
            position[chart_id] = {
                "type": "CHART",
                "id": chart_id,
                "children": [],
                "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {
                    "chartId": ids[key],
                    "uuid": spec.chart_uuid(chart),
                    "sliceName": chart.title,
                    "width": chart.width or width,
                    "height": chart.height or row_height,
                },
            }
    return position


def native_filter(
    spec: DashboardSpec, flt: FilterSpec, datasets: Mapping[str, Dataset], database: DatabaseConnection
) -> JsonObject:
    target = filter_dataset(spec, flt, datasets)
    ids = placeholder_ids(spec)
    # Charts whose dataset lacks the column are out of the filter's scope.
    excluded = [ids[c.key] for c in spec.charts if flt.column not in datasets[c.dataset].column_names]
    return {
        "id": f"NATIVE_FILTER-{stable_uuid('filter', spec.slug, flt.key)[:12]}",
        "name": flt.label,
        "filterType": "filter_select",
        "type": "NATIVE_FILTER",
        "targets": [{"datasetUuid": dataset_uuid(database, target.source), "column": {"name": flt.column}}],
        "controlValues": {
            "multiSelect": flt.multi_select,
            "enableEmptyFilter": False,
            "defaultToFirstItem": False,
            "inverseSelection": False,
            "searchAllOptions": False,
        },
        "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
        "cascadeParentIds": [],
        "scope": {"rootPath": ["ROOT_ID"], "excluded": excluded},
        "description": "",
    }


def dashboard_document(
    spec: DashboardSpec, datasets: Mapping[str, Dataset], database: DatabaseConnection
) -> JsonObject:
    return {
        "dashboard_title": spec.title,
        "description": spec.description,
        "css": "",
        "slug": spec.slug,
        "uuid": spec.uuid,
        "certified_by": None,
        "certification_details": None,
        "published": True,
        "position": position_document(spec),
        "metadata": {
            "native_filter_configuration": [native_filter(spec, f, datasets, database) for f in spec.filters],
            "color_scheme": "supersetColors",
            "cross_filters_enabled": False,
            "refresh_frequency": 0,
            "expanded_slices": {},
            "timed_refresh_immune_slices": [],
            "default_filters": "{}",
        },
        "version": BUNDLE_VERSION,
        "is_managed_externally": True,
        "external_url": None,
    }


def dashboard_chart_ids(client: SupersetClient, dashboard_id: int) -> set[int]:
    return {chart["id"] for chart in client.get(f"/api/v1/dashboard/{dashboard_id}/charts")["result"]}


def provision_dashboard(
    client: SupersetClient,
    database: DatabaseConnection,
    spec: DashboardSpec,
    datasets: Mapping[str, Dataset],
) -> Provisioned:
    """Import a dashboard and its charts (its datasets must exist); delete charts it dropped."""
    check_against_datasets(spec, datasets)
    for name in spec.datasets:
        require_one(client, "dataset", dataset_uuid(database, datasets[name].source), f"dataset {name!r}")
    existing = find_one(client, "dashboard", spec.uuid)
    before = dashboard_chart_ids(client, existing["id"]) if existing else set()
    documents = {
        f"charts/{spec.chart_uuid(chart)}.yaml": chart_document(
            spec, chart, dataset_uuid(database, datasets[chart.dataset].source)
        )
        for chart in spec.charts
    }
    documents[f"dashboards/{spec.uuid}.yaml"] = dashboard_document(spec, datasets, database)
    client.import_assets(zip_bundle(documents), sparse=True)
    item = require_one(client, "dashboard", spec.uuid, f"dashboard {spec.slug!r}")
    after = dashboard_chart_ids(client, item["id"])
    removed = sorted(before - after)
    for chart_id in removed:
        client.delete(f"/api/v1/chart/{chart_id}")
    return Provisioned(
        "dashboard",
        spec.slug,
        item["id"],
        spec.uuid,
        {
            "charts": len(after),
            "charts_removed": len(removed),
            "url": f"{client.url}/superset/dashboard/{spec.slug}/",
        },
    )
