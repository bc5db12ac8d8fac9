"""What a chart should return, computed with plain SQL straight from PostgreSQL (not through
Superset), and the comparison with what Superset's chart-data API returned."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg
from psycopg import sql

from cht_assets.bi.dashboard_specs import ChartSpec
from tests.superset import standin

GRAINS = {"P1D": "day", "P1W": "week", "P1M": "month", "P3M": "quarter", "P1Y": "year"}


def percent(part: int, whole: int) -> Decimal | None:
    """ROUND(100.0 * part / NULLIF(whole, 0), 1) as PostgreSQL computes it (half away from zero)."""
    if not whole:
        return None
    return (Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def normalize(value: Any) -> Any:
    """Both sides in chart-data JSON terms: times as epoch milliseconds, numbers as floats."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return float(value)
    return value


def row_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((value is None, str(value)) for value in row)


def chart_sql(chart: ChartSpec, places: Sequence[str] | None) -> tuple[sql.Composed, list[Any], list[str]]:
    """SELECT reproducing the chart's saved query; `places` restricts to rows under any of them."""
    select: list[sql.Composable] = []
    group: list[sql.Composable] = []
    labels: list[str] = []
    if chart.viz_type == "echarts_timeseries_bar":
        axis = sql.Identifier(chart.x_axis)
        if chart.time_grain:
            axis = sql.SQL("date_trunc({}, {})").format(sql.Literal(GRAINS[chart.time_grain]), axis)
        select.append(sql.SQL("{} AS {}").format(axis, sql.Identifier(chart.x_axis)))
        group.append(axis)
        labels.append(chart.x_axis)
    for column in chart.groupby:
        select.append(sql.Identifier(column))
        group.append(sql.Identifier(column))
        labels.append(column)
    for column in chart.columns:
        select.append(sql.Identifier(column))
        labels.append(column)
    for metric in chart.metrics:
        expression = metric.sql or f"{metric.aggregate}({metric.column})"
        select.append(sql.SQL("{} AS {}").format(sql.SQL(expression), sql.Identifier(metric.label)))
        labels.append(metric.label)
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    if chart.where:
        conditions.append(sql.SQL("({})").format(sql.SQL(chart.where)))
    if places is not None and chart.dataset in standin.HIERARCHY_VIEWS:
        conditions.append(sql.SQL("area_uuids && %s::text[]"))
        params.append(list(places))
    query = sql.SQL("SELECT {} FROM {}.{}").format(
        sql.SQL(", ").join(select), sql.Identifier(standin.VIEW_SCHEMA), sql.Identifier(chart.dataset)
    )
    if conditions:
        query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)
    if group and chart.metrics:
        query += sql.SQL(" GROUP BY ") + sql.SQL(", ").join(group)
    return query, params, labels


def expected(conninfo: str, chart: ChartSpec, places: Sequence[str] | None = None) -> tuple[list[str], list]:
    query, params, labels = chart_sql(chart, places)
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(query, params).fetchall()
    return labels, sorted((tuple(normalize(v) for v in row) for row in rows), key=row_key)


def actual(labels: Sequence[str], data: Sequence[dict[str, Any]]) -> list:
    return sorted((tuple(normalize(row[label]) for label in labels) for row in data), key=row_key)


def same(left: list, right: list) -> bool:
    if len(left) != len(right):
        return False
    for a_row, b_row in zip(left, right, strict=True):
        for a, b in zip(a_row, b_row, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif a != b:
                return False
    return True
