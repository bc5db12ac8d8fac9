"""The checks each view-layer object declares, and running them: pure (no Dagster).

Declared by the object's SQL header and by an optional `<name>.checks.yaml` next to its SQL file:

- `unique_key: a, b`: the grain, unique and not null (ERROR, blocking); `nullable_key: b` lets
  those key columns be NULL (a NULL then counts as one value);
- `materialized: incremental`: parity with the SQL run afresh over the raw docs (ERROR, blocking);
- `cast_check`, `doc_check`, `xform_check`: values and docs the object cannot read (WARN);
- `references: col -> relation.col`: parent references that resolve (WARN);
- each entry of `<name>.checks.yaml`: a reconciliation query that must return no rows (cht-pipeline
  style); the rows it returns are the failure's examples. ERROR checks block, WARN checks do not:

      reports_equal_form_metadata:
        severity: error            # error (default) | warn
        description: Reports per week and form equal the reports in form_metadata.
        sql: |
          SELECT ... -- one row per mismatch

After an incremental refresh, the key, parity and cast checks look at the rows that refresh
deleted or inserted (which is what could have gone wrong), and the doc check at the docs that
changed, so checking costs what refreshing did; after a (re)build they look at everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psycopg
import yaml

from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.sqlgraph.model import SqlObject
from cht_assets.warehouse import quality, shapes
from cht_assets.warehouse.refresh import Buildable, RefreshResult

REFERENCE = re.compile(r"^\s*(\w+)\s*->\s*(\w+)\.(\w+)\s*$")
CHECK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
CHECKS_SUFFIX = ".checks.yaml"
RECONCILIATION_KEYS = {"severity", "description", "sql"}

Runner = Callable[[psycopg.Connection, SqlObject, Buildable, RefreshResult], quality.Finding]


class Severity(StrEnum):
    ERROR = "ERROR"
    WARN = "WARN"


@dataclass(frozen=True)
class Check:
    name: str
    severity: Severity
    blocking: bool
    description: str
    run: Runner


@dataclass(frozen=True)
class Reconciliation:
    """A query over the object and the relations it is built from that must return no rows."""

    name: str
    severity: Severity
    description: str
    sql: str


def references(obj: SqlObject) -> list[tuple[str, str, str]]:
    found = []
    for item in obj.config.get("references", "").split(";"):
        match = REFERENCE.match(item)
        if match:
            found.append(match.groups())
    return found


def checks_file(obj: SqlObject) -> Path:
    """`sql/useviews/useview_x.sql` -> `sql/useviews/useview_x.checks.yaml` (which may not exist)."""
    return obj.path.with_name(obj.name + CHECKS_SUFFIX)


def reconciliation(path: Path, name: object, entry: object) -> Reconciliation:
    if not isinstance(name, str) or not CHECK_NAME.match(name):
        raise SqlGraphError(path, None, f"check name {name!r} must be lower_snake_case")
    if not isinstance(entry, dict) or not isinstance(entry.get("sql"), str) or not entry["sql"].strip():
        raise SqlGraphError(path, None, f"check {name}: needs `sql`, a query returning the rows that fail")
    unknown = set(entry) - RECONCILIATION_KEYS
    if unknown:
        raise SqlGraphError(path, None, f"check {name}: unknown keys {sorted(unknown)}")
    severity = str(entry.get("severity", "error")).upper()
    if severity not in Severity.__members__:
        raise SqlGraphError(
            path, None, f"check {name}: severity must be error or warn; got {severity.lower()!r}"
        )
    return Reconciliation(
        name, Severity(severity), str(entry.get("description", "")), entry["sql"].strip().rstrip(";")
    )


def reconciliations(obj: SqlObject) -> list[Reconciliation]:
    """The entries of the object's `.checks.yaml`, if it has one; a malformed file fails loading."""
    path = checks_file(obj)
    if not path.is_file():
        return []
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(entries, dict):
        raise SqlGraphError(path, None, "expected a mapping of check name to {severity, description, sql}")
    return [reconciliation(path, name, entry) for name, entry in entries.items()]


def key_description(key: tuple[str, ...], nullable: tuple[str, ...]) -> str:
    if not nullable:
        return f"{', '.join(key)} unique and not null"
    return f"{', '.join(key)} unique ({', '.join(nullable)} may be NULL, the rest not)"


def builtin_checks(obj: SqlObject) -> list[Check]:
    if not set(obj.nullable_key) <= set(obj.unique_key):
        raise SqlGraphError(
            obj.path, None, f"nullable_key names columns not in unique_key {list(obj.unique_key)}"
        )
    found: list[Check] = []
    key, nullable = obj.unique_key, obj.nullable_key
    if key:
        found.append(
            Check("unique_key", Severity.ERROR, True, key_description(key, nullable),
                  lambda c, o, b, r: quality.key_problems(c, o.name, key, b.doc_key, r.rewritten_ids, nullable))
        )  # fmt: skip
    if obj.kind == "incremental":
        found.append(
            Check("parity", Severity.ERROR, True, "rows equal the SQL run afresh over the raw docs",
                  lambda c, o, b, r: quality.parity(c, o.name, b.sql, b.doc_key, r.rewritten_ids))
        )  # fmt: skip
    if obj.config.get("cast_check"):
        found.append(
            Check("cast_failures", Severity.WARN, False,
                  "answers not valid for their field's type (stored as NULL), in the reports this refresh brought in",
                  lambda c, o, b, r: quality.cast_failures(c, b.cast_failures_sql, b.cast_failures_by_ids_sql, r.rewritten_ids))
        )  # fmt: skip
    if kind := obj.config.get("doc_check"):
        found.append(
            Check("doc_problems", Severity.WARN, False,
                  "docs of a shape the view cannot read (wrong types, broken hierarchy, unknown form): NULLs in the view",
                  lambda c, o, b, r: shapes.doc_problems(c, kind, r.changed_ids))
        )  # fmt: skip
    if obj.config.get("xform_check"):
        found.append(
            Check("xforms_parse", Severity.WARN, False, "form definitions whose XForm cannot be read (no formview for them)",
                  lambda c, o, b, r: quality.unreadable_forms(c))
        )  # fmt: skip
    for column, target, target_column in references(obj):
        found.append(
            Check(f"references_{column}", Severity.WARN, False, f"{column} exists in {target}.{target_column}",
                  lambda c, o, b, r, col=column, t=target, tc=target_column: quality.dangling_references(c, o.name, col, t, tc))
        )  # fmt: skip
    return found


def reconciliation_check(item: Reconciliation) -> Check:
    return Check(
        item.name,
        item.severity,
        item.severity == Severity.ERROR,
        item.description or "reconciliation query returns no rows",
        lambda c, o, b, r: quality.zero_rows(c, item.sql),
    )


def declared_checks(obj: SqlObject) -> list[Check]:
    """Every check the object declares (none for a function); names are unique per object."""
    if obj.is_function:
        return []
    found = [*builtin_checks(obj), *map(reconciliation_check, reconciliations(obj))]
    names = [check.name for check in found]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SqlGraphError(checks_file(obj), None, f"check names {repeated} already used by {obj.name}")
    return found


def run_checks(
    conn: psycopg.Connection, obj: SqlObject, built: Buildable, result: RefreshResult
) -> list[tuple[Check, quality.Finding]]:
    return [(check, check.run(conn, obj, built, result)) for check in declared_checks(obj)]
