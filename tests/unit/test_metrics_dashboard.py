"""deploy/grafana/cht-assets.json: valid JSON, and every query reads only metrics cht-metrics
exports (a renamed metric would leave a panel silently empty)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cht_assets.metrics.collector import build_families
from tests.unit.test_metrics import config, full_snapshot

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "cht-assets.json"
# What a PromQL expression holds besides metric names.
NOT_NAMES = [
    r'"(?:[^"\\]|\\.)*"',  # strings
    r"\{[^}]*\}",  # label matchers
    r"\[[^\]]*\]",  # range selectors
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",  # label lists
    r"\b[a-z_]+\s*(?=\()",  # functions and aggregations
    r"\b(?:and|or|unless|bool|offset)\b",
    r"\b\d+(?:\.\d+)?[smhdwy]?\b",  # numbers and durations
]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found += [panel, *panels(panel)] if "panels" in panel else [panel]
    return found


def metric_names(expr: str) -> set[str]:
    for pattern in NOT_NAMES:
        expr = re.sub(pattern, " ", expr)
    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))


def exported_names(tmp_path: Path) -> set[str]:
    """Sample names of a scrape where every metric has a value."""
    families = build_families(config(tmp_path), full_snapshot())
    return {sample.name for family in families for sample in family.samples} | {
        "cht_up",
        "cht_source_read_seconds",
    }


def test_metric_names_are_found_in_promql() -> None:
    expr = 'sum by (group) (increase(cht_x_total{db=~"a|b"}[1h])) / on (db) cht_y or vector(0)'
    assert metric_names(expr) == {"cht_x_total", "cht_y"}


def test_every_panel_reads_metrics_we_export(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_names(tmp_path)
    queries = [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]
    assert len(queries) >= 10
    for expr in queries:
        names = metric_names(expr)
        assert names and names <= exported, (expr, names - exported)
    variables = [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for definition in variables:
        (metric,) = re.findall(r"label_values\((\w+)", definition)
        assert metric in exported
    # The cht-sync metrics are CHT Watchdog's to chart; this dashboard covers the rest.
    assert not any("couch2pg_progress" in expr for expr in queries)
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)) and dashboard["uid"]
