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
        recheck: hourly            # every refresh (default) | hourly: see below
        scope: uuid                # with hourly: see below
        sql: |
          SELECT ... -- one row per mismatch

After an incremental refresh, the key, parity and cast checks look at the rows that refresh
deleted or inserted (which is what could have gone wrong), and the doc check at the docs that
changed, so checking costs what refreshing did; after a (re)build they look at everything.

What a check found stands while nothing it reads moved (cht_meta.check_findings): the object's
rows (its data version) and the relations its own SQL reads (their versions,
cht_assets.warehouse.versions). Such a check is not run again but its finding carried, with the
time it was made, for at most CARRY_AT_MOST: a view whose inputs did not move is not checked
again on every refresh, nor the contacts when only reports came in. An incremental table's data
version stands for the raw docs it reads, so its checks' comparisons with the raw docs are run
again when its rows changed (or after CARRY_AT_MOST), not on every new doc of another kind.

A reconciliation of an incremental table with the raw docs it is built from (`recheck: hourly`)
repeats, over the whole table, what the parity check does for each refresh's changes: after an
incremental refresh it carries a passing finding (same check, same object code) for at most
CARRY_AT_MOST even though the rows moved, so a report does not cost a scan of every document;
a failing one, or one after a rebuild, is made again every time. One with a `scope` column
(a reference from the rows to other docs, which no parity check covers; the column keys the
query's rows by the object's doc key) keeps every failing row's key, and between its hourly
whole-table runs is run over the rows each refresh rewrote only, the other rows' keys kept
from the last finding: a new report's broken reference shows at once, one that breaks
elsewhere (the contact deleted) within the hour, and a deployment whose reports already point
at deleted contacts does not pay a scan of every report per refresh.

A rollup kept by groups (`-- rewrite_by:`, cht_assets.warehouse.refresh.GroupRewrite) counts as
incremental here: its rewritten groups are its rewritten rows.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import psycopg
import yaml

from cht_assets.replica.schema import committed_change_seq
from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.sqlgraph.model import SqlObject
from cht_assets.sqlgraph.parse import parse_model, relation_refs
from cht_assets.warehouse import quality, shapes
from cht_assets.warehouse.refresh import Buildable, RefreshResult
from cht_assets.warehouse.state import StoredFinding, read_findings, save_findings
from cht_assets.warehouse.versions import RAW_DOCS, digest, inputs_version

REFERENCE = re.compile(r"^\s*(\w+)\s*->\s*(\w+)\.(\w+)\s*$")
CHECK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
CHECKS_SUFFIX = ".checks.yaml"
RECONCILIATION_KEYS = {"severity", "description", "sql", "recheck", "scope"}
RECHECKS = ("every refresh", "hourly")
# A finding is carried at most this long: a check runs again within it whatever moved.
CARRY_AT_MOST = timedelta(hours=1)
FORM_RELATIONS = ("raw.couchdb_docs", "raw.couchdb_form_xml")
UNREAD = "<unread>"  # no relation has this name

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
    # Relations its SQL reads besides the object; `scoped`: after an incremental refresh it
    # looks only at what the refresh changed (cheap: never carried then).
    reads: tuple[str, ...] = ()
    scoped: bool = False
    sql: str = ""
    hourly: bool = False  # `recheck: hourly`: a passing finding rolls over incremental refreshes
    scope: str = ""  # with hourly: between whole-table runs, run over the rewritten rows only


@dataclass(frozen=True)
class Outcome:
    """A check's finding, and when it was made: now, or carried from an earlier refresh."""

    check: Check
    finding: quality.Finding
    checked_at: datetime
    carried: bool = False


@dataclass(frozen=True)
class Reconciliation:
    """A query over the object and the relations it is built from that must return no rows."""

    name: str
    severity: Severity
    description: str
    sql: str
    hourly: bool = False
    scope: str = ""


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
    recheck = entry.get("recheck", RECHECKS[0])
    if recheck not in RECHECKS:
        raise SqlGraphError(
            path, None, f"check {name}: recheck must be one of {list(RECHECKS)}; got {recheck!r}"
        )
    scope = entry.get("scope", "")
    if scope and (recheck != "hourly" or not isinstance(scope, str) or not CHECK_NAME.match(scope)):
        raise SqlGraphError(
            path, None, f"check {name}: scope names a column of the query's rows, with recheck: hourly"
        )
    return Reconciliation(
        name,
        Severity(severity),
        str(entry.get("description", "")),
        entry["sql"].strip().rstrip(";"),
        hourly=recheck == "hourly",
        scope=scope,
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
                  lambda c, o, b, r: quality.key_problems(c, o.name, key, b.doc_key, r.rewritten_ids, nullable),
                  scoped=True)
        )  # fmt: skip
    if obj.kind == "incremental":
        found.append(
            Check("parity", Severity.ERROR, True, "rows equal the SQL run afresh over the raw docs",
                  lambda c, o, b, r: quality.parity(c, o.name, b.sql, b.doc_key, r.rewritten_ids), scoped=True)
        )  # fmt: skip
    if obj.config.get("cast_check"):
        found.append(
            Check("cast_failures", Severity.WARN, False,
                  "answers not valid for their field's type (stored as NULL), in the reports this refresh brought in",
                  lambda c, o, b, r: quality.cast_failures(c, b.cast_failures_sql, b.cast_failures_by_ids_sql, r.rewritten_ids),
                  scoped=True)
        )  # fmt: skip
    if kind := obj.config.get("doc_check"):
        found.append(
            Check("doc_problems", Severity.WARN, False,
                  "docs of a shape the view cannot read (wrong types, broken hierarchy, unknown form): NULLs in the view",
                  lambda c, o, b, r: shapes.doc_problems(c, kind, r.changed_ids), scoped=True)
        )  # fmt: skip
    if obj.config.get("xform_check"):
        found.append(
            Check("xforms_parse", Severity.WARN, False, "form definitions whose XForm cannot be read (no formview for them)",
                  lambda c, o, b, r: quality.unreadable_forms(c), reads=FORM_RELATIONS)
        )  # fmt: skip
    for column, target, target_column in references(obj):
        found.append(
            Check(f"references_{column}", Severity.WARN, False, f"{column} exists in {target}.{target_column}",
                  lambda c, o, b, r, col=column, t=target, tc=target_column: quality.dangling_references(c, o.name, col, t, tc),
                  reads=(target,))
        )  # fmt: skip
    return found


def reconciliation_check(item: Reconciliation) -> Check:
    return Check(
        item.name,
        item.severity,
        item.severity == Severity.ERROR,
        item.description or "reconciliation query returns no rows",
        lambda c, o, b, r: quality.zero_rows(c, item.sql, item.scope),
        reads=relations_read(item.sql),
        sql=item.sql,
        hourly=item.hourly,
        scope=item.scope,
    )


@functools.cache
def relations_read(sql: str) -> tuple[str, ...]:
    """The relations a query reads: `raw.x` with its schema, the others by name (as objects are).
    A query sqlglot cannot read (PostgreSQL may) reads UNREAD, which has no version: its finding
    is never carried."""
    try:
        refs = relation_refs(parse_model(sql, Path("<check>"), 0))
    except SqlGraphError:
        return (UNREAD,)
    return tuple(sorted({".".join(ref.parts) if ref.parts[0] == "raw" else ref.parts[-1] for ref in refs}))


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


def checks_version(
    conn: psycopg.Connection, obj: SqlObject, result: RefreshResult, declared: Sequence[Check]
) -> str | None:
    """The version of what the checks read: the object's rows, the relations their SQL reads
    (the raw docs only for an object that is not incremental: an incremental table's rows stand
    for the docs it reads) and the checks themselves. None: nothing can be carried."""
    if not result.data_version:
        return None
    reads = {name for check in declared for name in check.reads} - {obj.name}
    if obj.kind == "incremental":
        reads -= RAW_DOCS
    code = digest([result.data_version, *(f"{c.name}:{c.severity}:{c.sql}" for c in declared)])
    texts = [check.sql for check in declared]
    return inputs_version(conn, code, reads, texts, committed_change_seq(conn) if reads & RAW_DOCS else 0)


def check_version(obj: SqlObject, check: Check) -> str:
    """The check as it is declared, on the object as its code builds it."""
    return digest([obj.code_version, check.name, check.severity, check.sql])


def carries(
    check: Check,
    obj: SqlObject,
    result: RefreshResult,
    stored: StoredFinding | None,
    version: str | None,
    now: datetime,
) -> bool:
    if stored is None or now - stored.checked_at > CARRY_AT_MOST:
        return False
    if version is not None and stored.inputs_version == version:
        return not (check.scoped and result.rewritten_ids is not None)  # cheap: look at the changes
    return rolls(check, obj, result, stored) and stored.count == 0 and not check.scope


def rolls(check: Check, obj: SqlObject, result: RefreshResult, stored: StoredFinding) -> bool:
    """A `recheck: hourly` reconciliation, after an incremental refresh of the same code (whose
    changes its parity check looked at): a passing finding rolls on."""
    return (
        check.hourly
        and (obj.kind == "incremental" or "rewrite_by" in obj.config)
        and result.rewritten_ids is not None
        and stored.check_version == check_version(obj, check)
    )


def narrows(
    check: Check, obj: SqlObject, result: RefreshResult, stored: StoredFinding | None, now: datetime
) -> bool:
    """A scoped reconciliation whose whole-table finding (its failing rows' keys) is less than
    an hour old, after an incremental refresh: it runs over the rewritten rows only."""
    return (
        bool(check.scope)
        and stored is not None
        and stored.keys is not None
        and now - stored.checked_at <= CARRY_AT_MOST
        and rolls(check, obj, result, stored)
    )


def narrowed(
    conn: psycopg.Connection, check: Check, result: RefreshResult, prior: StoredFinding
) -> quality.Finding:
    """The rewritten rows looked at again; the other rows' keys as the last finding holds them."""
    rewritten = result.rewritten_ids or ()
    found = quality.zero_rows(conn, check.sql, check.scope, rewritten)
    still = set(prior.keys or ()) - set(rewritten)
    keys = still | set(found.keys or ())
    kept = [e for e in prior.examples if str(json.loads(e).get(check.scope)) in still]
    return quality.Finding(
        len(keys), [*found.examples, *kept][: quality.EXAMPLES], found.details, tuple(sorted(keys))
    )


def run_checks(
    conn: psycopg.Connection, obj: SqlObject, built: Buildable, result: RefreshResult
) -> list[Outcome]:
    """Every declared check's finding, carried where it stands; what they found is stored."""
    declared = declared_checks(obj)
    if not declared:
        return []
    version = checks_version(conn, obj, result, declared)
    stored: Mapping[str, StoredFinding] = read_findings(conn, obj.name)
    now = datetime.now(UTC)
    outcomes = []
    for check in declared:
        prior = stored.get(check.name)
        if carries(check, obj, result, prior, version, now):
            finding = quality.Finding(prior.count, prior.examples, prior.details, prior.keys)
            outcomes.append(Outcome(check, finding, prior.checked_at, carried=True))
        elif narrows(check, obj, result, prior, now):
            # It stands on the last whole-table run, whose time brings the next one.
            outcomes.append(Outcome(check, narrowed(conn, check, result, prior), prior.checked_at))
        else:
            outcomes.append(Outcome(check, check.run(conn, obj, built, result), now))
    save_findings(
        conn,
        obj.name,
        {
            o.check.name: StoredFinding(
                version or "",
                o.finding.count,
                o.finding.examples,
                o.finding.details,
                o.checked_at,
                check_version(obj, o.check),
                o.finding.keys,
            )
            for o in outcomes
        },
    )
    return outcomes
