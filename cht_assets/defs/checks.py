"""Dagster wiring of the view layers' checks, run in the same step as each refresh.

What is checked, and how, is declared in `cht_assets.warehouse.checks` (pure): here each check
becomes an `AssetCheckSpec` at load time and an `AssetCheckResult` after each refresh.
"""

import dagster as dg
import psycopg

from cht_assets.sqlgraph.model import SqlObject
from cht_assets.warehouse import checks
from cht_assets.warehouse.refresh import Buildable, RefreshResult

SEVERITY = {
    checks.Severity.ERROR: dg.AssetCheckSeverity.ERROR,
    checks.Severity.WARN: dg.AssetCheckSeverity.WARN,
}


# The checks run in their asset's step, but the view layers' step can subset: to the automation
# each check is then an entity of its own, requested only by a condition of its own. Without it
# a check would never "be requested" with its asset, and what reads the asset (its condition
# wants every upstream blocking check passed or requested) would wait a tick for the pass.
WITH_ITS_ASSET = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested()).with_label(
    "with its asset"
)


def check_specs_for(obj: SqlObject, asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            check.name,
            asset=asset_key,
            blocking=check.blocking,
            description=check.description,
            automation_condition=WITH_ITS_ASSET,
        )
        for check in checks.declared_checks(obj)
    ]


def check_result(outcome: checks.Outcome, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
    check, finding = outcome.check, outcome.finding
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check.name,
        passed=finding.count == 0,
        severity=SEVERITY[check.severity],
        metadata={
            "count": finding.count,
            "examples": dg.MetadataValue.json(finding.examples),
            **finding.details,
            # A finding that stands (nothing it reads moved) is carried, not made again.
            "checked_at": dg.MetadataValue.timestamp(outcome.checked_at),
            "carried": outcome.carried,
        },
    )


def run_checks(
    conn: psycopg.Connection,
    obj: SqlObject,
    asset_key: dg.AssetKey,
    built: Buildable,
    result: RefreshResult,
    log: dg.DagsterLogManager,
) -> list[dg.AssetCheckResult]:
    results = []
    for outcome in checks.run_checks(conn, obj, built, result):
        check, finding = outcome.check, outcome.finding
        if finding.count and not outcome.carried:
            log.warning(f"{obj.name}: check {check.name} found {finding.count} (e.g. {finding.examples[:3]})")
        results.append(check_result(outcome, asset_key))
    return results
