"""Dashboards as YAML (`superset/dashboards/*.yaml`): parsed and checked against the datasets
before anything reaches Superset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cht_assets.bi.bundle import BundleError, stable_uuid
from cht_assets.bi.client import JsonObject
from cht_assets.bi.datasets import Dataset

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = PROJECT_ROOT / "superset" / "dashboards"
GRID_COLUMNS = 12

VIZ_TYPES = ("big_number_total", "echarts_timeseries_bar", "table", "pie")
SINGLE_METRIC_TYPES = ("big_number_total", "pie")


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
