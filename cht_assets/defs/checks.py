"""Asset checks of the view layers, run in the same step as each refresh.

Declared from each object's SQL header: a `unique_key` gets a unique-and-not-null check, an
incremental table a parity check against its SQL run afresh (all blocking: a failure would feed
wrong numbers downstream); `references: col -> relation.col` a referential check (WARN).
After an incremental refresh, the key, parity and cast checks look at the rows that refresh
deleted or inserted (which is what could have gone wrong), and the doc check at the docs that
changed, so checking costs what refreshing did; after a (re)build they look at everything.
"""

import re
from collections.abc import Callable

import dagster as dg
import psycopg

from cht_assets.sqlgraph.model import SqlObject
from cht_assets.warehouse import quality, shapes
from cht_assets.warehouse.refresh import Buildable, RefreshResult

REFERENCE = re.compile(r"^\s*(\w+)\s*->\s*(\w+)\.(\w+)\s*$")
Runner = Callable[[psycopg.Connection, SqlObject, Buildable, RefreshResult], quality.Finding]


def references(obj: SqlObject) -> list[tuple[str, str, str]]:
    found = []
    for item in obj.config.get("references", "").split(";"):
        match = REFERENCE.match(item)
        if match:
            found.append(match.groups())
    return found


def declared_checks(obj: SqlObject) -> list[tuple[str, dg.AssetCheckSeverity, bool, Runner, str]]:
    """(name, severity, blocking, runner, description) for every check the object declares."""
    found: list[tuple[str, dg.AssetCheckSeverity, bool, Runner, str]] = []
    error, warn = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
    if obj.kind == "function":
        return found
    key = obj.unique_key
    if key:
        found.append(
            (
                "unique_key",
                error,
                True,
                lambda c, o, b, r: quality.key_problems(c, o.name, key, b.doc_key, r.rewritten_ids),
                f"{', '.join(key)} unique and not null",
            )
        )
    if obj.kind == "incremental":
        found.append(
            ("parity", error, True, lambda c, o, b, r: quality.parity(c, o.name, b.sql, b.doc_key, r.rewritten_ids),
             "rows equal the SQL run afresh over the raw docs")
        )  # fmt: skip
    if obj.config.get("cast_check"):
        found.append(
            ("cast_failures", warn, False, lambda c, o, b, r: quality.cast_failures(c, b.cast_failures_sql, b.cast_failures_by_ids_sql, r.rewritten_ids),
             "answers not valid for their field's type (stored as NULL), in the reports this refresh brought in")
        )  # fmt: skip
    if obj.config.get("doc_check"):
        found.append(
            ("doc_problems", warn, False,
             lambda c, o, b, r, kind=obj.config["doc_check"]: shapes.doc_problems(c, kind, r.changed_ids),
             "docs of a shape the view cannot read (wrong types, broken hierarchy, unknown form): NULLs in the view")
        )  # fmt: skip
    if obj.config.get("xform_check"):
        found.append(
            ("xforms_parse", warn, False, lambda c, o, b, r: quality.unreadable_forms(c),
             "form definitions whose XForm cannot be read (no formview for them)")
        )  # fmt: skip
    for column, target, target_column in references(obj):
        found.append(
            (f"references_{column}", warn, False,
             lambda c, o, b, r, col=column, t=target, tc=target_column: quality.dangling_references(c, o.name, col, t, tc),
             f"{column} exists in {target}.{target_column}")
        )  # fmt: skip
    return found


def check_specs_for(obj: SqlObject, asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name, asset=asset_key, blocking=blocking, description=description)
        for name, _, blocking, _, description in declared_checks(obj)
    ]


def run_checks(
    conn: psycopg.Connection,
    obj: SqlObject,
    built: Buildable,
    result: RefreshResult,
    log: dg.DagsterLogManager,
) -> list[dg.AssetCheckResult]:
    results = []
    for name, severity, _, runner, _ in declared_checks(obj):
        finding = runner(conn, obj, built, result)
        if finding.count:
            log.warning(f"{obj.name}: check {name} found {finding.count} (e.g. {finding.examples[:3]})")
        results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=finding.count == 0,
                severity=severity,
                metadata={
                    "count": finding.count,
                    "examples": dg.MetadataValue.json(finding.examples),
                    **finding.details,
                },
            )
        )
    return results
