"""Superset assets as code: dashboards YAML + PostgreSQL's catalog -> an assets bundle -> Superset.

An assets bundle is a zip of YAML files (`metadata.yaml`, `databases/`, `datasets/`, `charts/`,
`dashboards/`) that Superset imports with `POST /api/v1/assets/import/`, overwriting by UUID.
Every UUID here is a uuid5 of a stable name, so a rerun updates the same objects in place (on
this Superset and on any other) and never creates a duplicate. The bundle never holds integer
ids: the importer resolves `dataset_uuid`, `datasetUuid` and the layout's `meta.uuid` itself.

Each step imports only its own objects (`sparse`, the rest referred to by UUID), which matches
the asset graph: the database connection, then one dataset per view, then one dashboard each.
Dataset columns come from PostgreSQL's catalog on every run, then a REST refresh, so a column
added to a view appears in its dataset. A dashboard import replaces its chart links; charts
that left the YAML are deleted.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import yaml

from cht_assets.bi.client import JsonObject, SupersetClient

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = PROJECT_ROOT / "superset" / "dashboards"
NAMESPACE = uuid.UUID("5d0f1c3e-7c0b-5b53-9c1e-2f6b9a1c4e71")  # never change: it keys every object
BUNDLE_VERSION = "1.0.0"
PASSWORD_MASK = "X" * 10  # Superset's placeholder for a password supplied separately
GRID_COLUMNS = 12

VIZ_TYPES = ("big_number_total", "echarts_timeseries_bar", "table", "pie")
SINGLE_METRIC_TYPES = ("big_number_total", "pie")
DEFAULT_HEIGHT = {
    "big_number_total": 25,
    "pie": 40,
    "echarts_timeseries_bar": 50,
    "table": 50,
}  # grid units of 8 px


class BundleError(ValueError):
    """A dashboard definition or a dataset cannot be turned into Superset assets."""


def stable_uuid(kind: str, *names: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x1f".join([kind, *names])))


# --- what is provisioned -----------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSource:
    """A view (or table) to publish as a Superset dataset, and the asset that builds it:
    `asset_key` is the path of that asset's key (`("useviews", "useview_population")`)."""

    asset_key: tuple[str, ...]
    schema: str
    relation: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "asset_key", tuple(self.asset_key))


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    is_dttm: bool


@dataclass(frozen=True)
class Dataset:
    source: DatasetSource
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> frozenset[str]:
        return frozenset(column.name for column in self.columns)


@dataclass(frozen=True)
class DatabaseConnection:
    """How Superset reaches the analytics database (a read-only role)."""

    name: str
    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)

    @property
    def uuid(self) -> str:
        return stable_uuid("database", self.name)

    @property
    def file_name(self) -> str:
        return f"databases/{self.uuid}.yaml"

    def sqlalchemy_uri(self, *, masked: bool = True) -> str:
        secret = PASSWORD_MASK if masked else self.password
        credentials = f"{quote(self.user, safe='')}:{quote(secret, safe='')}"
        return f"postgresql+psycopg2://{credentials}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"

    @classmethod
    def from_conninfo(cls, name: str, conninfo: str, user: str, password: str) -> DatabaseConnection:
        """The server and database of `conninfo` (a URL or key=value string), as `user`."""
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        return cls(
            name=name,
            host=str(params.get("host") or "127.0.0.1"),
            port=int(params.get("port") or 5432),
            dbname=str(params.get("dbname") or "postgres"),
            user=user,
            password=password,
        )


def dataset_uuid(database: DatabaseConnection, source: DatasetSource) -> str:
    return stable_uuid("dataset", database.name, source.schema, source.relation)


# --- PostgreSQL's catalog ----------------------------------------------------------------------

COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory = 'D'
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def superset_type(pg_type: str) -> str:
    """The type name Superset's own column refresh stores (`timestamp with time zone` ->
    `TIMESTAMP WITH TIME ZONE`, `text[]` -> `TEXT[]`), so import and refresh agree."""
    return pg_type.upper()


def read_columns(conninfo: str, source: DatasetSource) -> tuple[Column, ...]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(COLUMNS_SQL, (source.schema, source.relation)).fetchall()
    if not rows:
        raise BundleError(f"{source.schema}.{source.relation} does not exist (or has no columns)")
    return tuple(Column(name, superset_type(pg_type), bool(is_dttm)) for name, pg_type, is_dttm in rows)


def read_dataset(conninfo: str, source: DatasetSource) -> Dataset:
    return Dataset(source, read_columns(conninfo, source))


# --- dashboards YAML ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    label: str
    sql: str | None = None
    aggregate: str | None = None
    column: str | None = None

    def adhoc(self) -> JsonObject:
        """Superset's adhoc metric (what the chart editor saves)."""
        if self.sql is not None:
            return {
                "expressionType": "SQL",
                "sqlExpression": self.sql,
                "label": self.label,
                "hasCustomLabel": True,
                "optionName": f"metric_{stable_uuid('metric', self.label, self.sql)[:8]}",
            }
        return {
            "expressionType": "SIMPLE",
            "aggregate": self.aggregate,
            "column": {"column_name": self.column},
            "label": self.label,
            "hasCustomLabel": True,
            "optionName": f"metric_{stable_uuid('metric', self.label, str(self.column))[:8]}",
        }


@dataclass(frozen=True)
class ChartSpec:
    key: str
    title: str
    viz_type: str
    dataset: str
    metrics: tuple[MetricSpec, ...] = ()
    groupby: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # table in raw mode
    x_axis: str | None = None
    time_grain: str | None = None
    where: str | None = None
    order_by: tuple[tuple[str, bool], ...] = ()  # (column or metric label, ascending)
    row_limit: int = 10000
    width: int | None = None
    height: int | None = None
    description: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def referenced_columns(self) -> set[str]:
        names = {*self.groupby, *self.columns}
        names.update(m.column for m in self.metrics if m.column)
        if self.x_axis:
            names.add(self.x_axis)
        return names


@dataclass(frozen=True)
class FilterSpec:
    key: str
    label: str
    column: str
    dataset: str | None = None  # default: the first chart's dataset that has the column
    multi_select: bool = True


@dataclass(frozen=True)
class DashboardSpec:
    slug: str
    title: str
    charts: tuple[ChartSpec, ...]
    rows: tuple[tuple[str, ...], ...]
    filters: tuple[FilterSpec, ...] = ()
    description: str | None = None
    source: str = "<memory>"

    @property
    def uuid(self) -> str:
        return stable_uuid("dashboard", self.slug)

    def chart_uuid(self, chart: ChartSpec) -> str:
        return stable_uuid("chart", self.slug, chart.key)

    @property
    def datasets(self) -> tuple[str, ...]:
        """Relation names used by the charts (and filters), in first-use order."""
        names = [chart.dataset for chart in self.charts]
        names += [f.dataset for f in self.filters if f.dataset]
        return tuple(dict.fromkeys(names))


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data or data[key] in (None, ""):
        raise BundleError(f"{where}: `{key}` is required")
    return data[key]


def _names(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BundleError(f"{where}: expected a list of column names")
    return tuple(value)


def parse_metric(data: Any, where: str) -> MetricSpec:
    if isinstance(data, str):
        return MetricSpec(label=data, sql=data)
    if not isinstance(data, Mapping):
        raise BundleError(f"{where}: a metric is `{{label, sql}}` or `{{label, aggregate, column}}`")
    label = str(_require(data, "label", where))
    if "sql" in data:
        return MetricSpec(label=label, sql=str(data["sql"]))
    aggregate = str(_require(data, "aggregate", where)).upper()
    if aggregate not in ("SUM", "COUNT", "COUNT_DISTINCT", "AVG", "MIN", "MAX"):
        raise BundleError(f"{where}: unknown aggregate {aggregate!r}")
    return MetricSpec(label=label, aggregate=aggregate, column=str(_require(data, "column", where)))


def parse_order(value: Any, where: str) -> tuple[tuple[str, bool], ...]:
    """`[label, -label]`: a leading `-` sorts descending."""
    names = _names(value, where)
    return tuple((name[1:], False) if name.startswith("-") else (name, True) for name in names)


def parse_chart(data: Any, where: str) -> ChartSpec:
    if not isinstance(data, Mapping):
        raise BundleError(f"{where}: a chart is a mapping")
    key = str(_require(data, "key", where))
    where = f"{where} ({key})"
    viz_type = str(_require(data, "type", where))
    if viz_type not in VIZ_TYPES:
        raise BundleError(f"{where}: type {viz_type!r} is not one of {', '.join(VIZ_TYPES)}")
    metrics = [parse_metric(m, f"{where} metric") for m in data.get("metrics") or []]
    if data.get("metric") is not None:
        metrics.insert(0, parse_metric(data["metric"], f"{where} metric"))
    chart = ChartSpec(
        key=key,
        title=str(data.get("title") or key),
        viz_type=viz_type,
        dataset=str(_require(data, "dataset", where)),
        metrics=tuple(metrics),
        groupby=_names(data.get("groupby"), f"{where} groupby"),
        columns=_names(data.get("columns"), f"{where} columns"),
        x_axis=data.get("x_axis"),
        time_grain=data.get("time_grain"),
        where=data.get("where"),
        order_by=parse_order(data.get("order_by"), f"{where} order_by"),
        row_limit=int(data.get("row_limit") or 10000),
        width=data.get("width"),
        height=data.get("height"),
        description=data.get("description"),
        options=dict(data.get("options") or {}),
    )
    check_chart(chart, where)
    return chart


def check_chart(chart: ChartSpec, where: str) -> None:
    if chart.viz_type in SINGLE_METRIC_TYPES and len(chart.metrics) != 1:
        raise BundleError(f"{where}: {chart.viz_type} takes exactly one `metric`")
    if chart.viz_type == "echarts_timeseries_bar" and (not chart.x_axis or not chart.metrics):
        raise BundleError(f"{where}: a bar chart needs `x_axis` and `metrics`")
    if chart.viz_type == "pie" and len(chart.groupby) != 1:
        raise BundleError(f"{where}: a pie chart needs one `groupby` column")
    if chart.viz_type == "table" and bool(chart.columns) == bool(chart.metrics or chart.groupby):
        raise BundleError(f"{where}: a table has either `columns` (rows as they are) or `groupby`/`metrics`")


def parse_rows(value: Any, keys: Sequence[str], where: str) -> tuple[tuple[str, ...], ...]:
    if value is None:
        return tuple((key,) for key in keys)
    rows = tuple(_names(row, f"{where} layout") for row in value)
    placed = [key for row in rows for key in row]
    unknown = sorted(set(placed) - set(keys))
    if unknown:
        raise BundleError(f"{where}: layout names unknown charts {unknown}")
    missing = [key for key in keys if key not in placed]
    twice = sorted({key for key in placed if placed.count(key) > 1})
    if missing or twice:
        raise BundleError(f"{where}: every chart goes in the layout once (missing {missing}, twice {twice})")
    if any(not row or len(row) > GRID_COLUMNS for row in rows):
        raise BundleError(f"{where}: a layout row holds 1 to {GRID_COLUMNS} charts")
    return rows


def parse_dashboard(data: Any, source: str = "<memory>") -> DashboardSpec:
    if not isinstance(data, Mapping):
        raise BundleError(f"{source}: a dashboard file is a mapping")
    charts = tuple(parse_chart(c, f"{source}: chart {i + 1}") for i, c in enumerate(data.get("charts") or []))
    if not charts:
        raise BundleError(f"{source}: a dashboard needs charts")
    keys = [chart.key for chart in charts]
    if len(set(keys)) != len(keys):
        raise BundleError(f"{source}: chart keys must be unique")
    filters = []
    for i, item in enumerate(data.get("filters") or []):
        where = f"{source}: filter {i + 1}"
        column = str(_require(item, "column", where))
        filters.append(
            FilterSpec(
                key=str(item.get("key") or column),
                label=str(item.get("label") or column),
                column=column,
                dataset=item.get("dataset"),
                multi_select=bool(item.get("multi_select", True)),
            )
        )
    return DashboardSpec(
        slug=str(_require(data, "slug", source)),
        title=str(_require(data, "title", source)),
        description=data.get("description"),
        charts=charts,
        rows=parse_rows(data.get("layout"), keys, source),
        filters=tuple(filters),
        source=source,
    )


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> list[DashboardSpec]:
    """Every `*.yaml` in `directory`, sorted by file name; slugs must be unique."""
    specs = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise BundleError(f"{path.name}: not valid YAML: {error}") from None
        specs.append(parse_dashboard(data, path.name))
    slugs = [spec.slug for spec in specs]
    if len(set(slugs)) != len(slugs):
        raise BundleError(f"dashboard slugs must be unique: {slugs}")
    return specs


def check_against_datasets(spec: DashboardSpec, datasets: Mapping[str, Dataset]) -> None:
    """Every dataset and column the dashboard names exists (raise before touching Superset)."""
    for chart in spec.charts:
        where = f"{spec.source}: chart {chart.key}"
        if chart.dataset not in datasets:
            raise BundleError(f"{where}: unknown dataset {chart.dataset!r}")
        missing = sorted(chart.referenced_columns() - datasets[chart.dataset].column_names)
        if missing:
            raise BundleError(f"{where}: {chart.dataset} has no column(s) {missing}")
    for flt in spec.filters:
        filter_dataset(spec, flt, datasets)


def filter_dataset(spec: DashboardSpec, flt: FilterSpec, datasets: Mapping[str, Dataset]) -> Dataset:
    names = [flt.dataset] if flt.dataset else [chart.dataset for chart in spec.charts]
    for name in names:
        if name in datasets and flt.column in datasets[name].column_names:
            return datasets[name]
    raise BundleError(f"{spec.source}: filter {flt.key}: no dataset of this dashboard has {flt.column!r}")


# --- YAML documents of the bundle ---------------------------------------------------------------


def database_document(database: DatabaseConnection) -> JsonObject:
    return {
        "database_name": database.name,
        "sqlalchemy_uri": database.sqlalchemy_uri(masked=True),
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_csv_upload": False,
        "impersonate_user": False,
        "extra": {"allows_virtual_table_explore": True, "metadata_params": {}, "engine_params": {}},
        "uuid": database.uuid,
        "version": BUNDLE_VERSION,
        "is_managed_externally": True,
    }


ACRONYMS = {
    "chw": "CHW",
    "uuid": "UUID",
    "uuids": "UUIDs",
    "anc": "ANC",
    "edd": "EDD",
    "lmp": "LMP",
    "id": "ID",
}


def column_label(name: str) -> str:
    """`chw_name` -> `CHW name`: what charts show as a column's header."""
    words = [ACRONYMS.get(word, word) for word in name.split("_") if word]
    if not words:
        return name
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def dataset_document(database: DatabaseConnection, dataset: Dataset) -> JsonObject:
    dttm = [column.name for column in dataset.columns if column.is_dttm]
    return {
        "table_name": dataset.source.relation,
        "schema": dataset.source.schema,
        "main_dttm_col": dttm[0] if dttm else None,
        "description": None,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "sql": None,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "uuid": dataset_uuid(database, dataset.source),
        "metrics": [
            {
                "metric_name": "count",
                "verbose_name": "COUNT(*)",
                "metric_type": "count",
                "expression": "COUNT(*)",
                "description": None,
                "d3format": None,
                "extra": {},
                "warning_text": None,
            }
        ],
        "columns": [
            {
                "column_name": column.name,
                "verbose_name": column_label(column.name),
                "is_dttm": column.is_dttm,
                "is_active": True,
                "type": column.type,
                "advanced_data_type": None,
                "groupby": True,
                "filterable": True,
                "expression": None,
                "description": None,
                "python_date_format": None,
                "extra": {},
            }
            for column in dataset.columns
        ],
        "version": BUNDLE_VERSION,
        "database_uuid": database.uuid,
        "is_managed_externally": True,
    }


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


def zip_bundle(documents: Mapping[str, JsonObject]) -> bytes:
    """The zip Superset imports: `<root>/metadata.yaml` plus the documents, deterministic bytes."""
    files = {"metadata.yaml": {"version": BUNDLE_VERSION, "type": "assets"}, **documents}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(f"cht_assets/{name}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, yaml.safe_dump(files[name], sort_keys=True, allow_unicode=True))
    return buffer.getvalue()


# --- provisioning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provisioned:
    """What one provisioning step left in Superset."""

    kind: str
    name: str
    id: int
    uuid: str
    details: Mapping[str, Any] = field(default_factory=dict)


def find_one(client: SupersetClient, collection: str, uuid_: str) -> JsonObject | None:
    found = client.find(collection, uuid=uuid_)
    return found[0] if found else None


def require_one(client: SupersetClient, collection: str, uuid_: str, what: str) -> JsonObject:
    item = find_one(client, collection, uuid_)
    if item is None:
        raise BundleError(f"{what} is not in Superset (uuid {uuid_}); provision it first")
    return item


def provision_database(client: SupersetClient, database: DatabaseConnection) -> Provisioned:
    """Create or update the database connection (the password goes in the import's form)."""
    bundle = zip_bundle({database.file_name: database_document(database)})
    client.import_assets(bundle, passwords={database.file_name: database.password})
    item = require_one(client, "database", database.uuid, f"database {database.name!r}")
    return Provisioned(
        "database", database.name, item["id"], database.uuid, {"uri": database.sqlalchemy_uri()}
    )


def provision_dataset(client: SupersetClient, database: DatabaseConnection, dataset: Dataset) -> Provisioned:
    """Import one dataset (columns from the catalog), then let Superset refresh its columns."""
    require_one(client, "database", database.uuid, f"database {database.name!r}")
    uuid_ = dataset_uuid(database, dataset.source)
    name = f"datasets/{database.uuid}/{uuid_}.yaml"
    client.import_assets(zip_bundle({name: dataset_document(database, dataset)}), sparse=True)
    item = require_one(client, "dataset", uuid_, f"dataset {dataset.source.relation!r}")
    client.put(f"/api/v1/dataset/{item['id']}/refresh")
    columns = [c["column_name"] for c in client.get(f"/api/v1/dataset/{item['id']}")["result"]["columns"]]
    return Provisioned(
        "dataset",
        f"{dataset.source.schema}.{dataset.source.relation}",
        item["id"],
        uuid_,
        {"columns": columns},
    )


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


def datasets_by_relation(datasets: Iterable[Dataset]) -> dict[str, Dataset]:
    return {dataset.source.relation: dataset for dataset in datasets}
