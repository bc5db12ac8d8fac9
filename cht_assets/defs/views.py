"""One Dagster asset per object of the view catalog (cht_assets.warehouse.catalog), its
dependencies parsed from the SQL, all computed by one subsettable step (`view_layers`).

Each object is its own asset with its own checks, history and automation; a run refreshes the
objects it selected, in build order, in one step: a step per object cost Dagster about ten
stored events and its bookkeeping each, more than most refreshes. Each object's checks run right
after it: what reads an object whose blocking check failed is not built in that step (nor what
reads an object that failed, or that waits for a form), as Dagster skips the steps downstream of
a failed one; the others are. The step fails at the end if an object failed or a blocking check
did. What did not move costs little: a rollup whose inputs did not change is not rebuilt, and a
check whose inputs did not change carries its finding (cht_assets.warehouse.versions,
cht_assets.warehouse.checks); each materialization carries the object's data version. An object
waiting for a form the deployment lacks is not attempted: it records an observation saying what
it waits for (what reads it is not built, nothing else), and its automation is off until the
form appears (cht_assets.defs.forms reloads the code location then).
"""

import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psycopg

from cht_assets.defs import checks
from cht_assets.defs.dictionary import FORM_DICTIONARY_KEY
from cht_assets.defs.raw import RAW_DOCS_METADATA, raw_asset_key
from cht_assets.defs.resources import PostgresResource
from cht_assets.replica.schema import relation_sources
from cht_assets.settings import load_settings
from cht_assets.sqlgraph import SqlGraph, SqlObject, column_lineage
from cht_assets.warehouse import catalog as view_catalog
from cht_assets.warehouse.catalog import (
    DICTIONARY_RELATIONS,
    AbsentInput,
    CatalogEntry,
    ViewCatalog,
    deployment_catalog,
    refresh_entry,
)
from cht_assets.warehouse.comments import RelationComments, apply_comments
from cht_assets.warehouse.reach import raw_docs_filter
from cht_assets.warehouse.refresh import RefreshResult
from cht_assets.warehouse.state import ensure_meta_schema

SQL_ROOT = view_catalog.SQL_ROOT
WAITING_TAG = "cht/waiting_for"
VIEW_LAYERS_OP = "view_layers"


def view_asset_key(obj: SqlObject) -> dg.AssetKey:
    return dg.AssetKey([obj.layer, obj.name])


def load_catalog() -> ViewCatalog:
    """This deployment's catalog now: its forms from the warehouse, or from CouchDB when the
    warehouse has none yet (the first run on an empty warehouse)."""
    return deployment_catalog(load_settings(), sql_root=SQL_ROOT)


def column_schema(held: RelationComments) -> dg.TableSchema:
    """The columns, types and descriptions exactly as PostgreSQL holds them (its comments)."""
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, c.type, description=c.comment) for c in held.columns]
    )


def lineage_metadata(graph: SqlGraph, obj: SqlObject) -> dg.TableColumnLineage | None:
    deps_by_column = {}
    for column, sources in column_lineage(graph, obj.name).items():
        deps = [
            dg.TableColumnDep(asset_key=view_asset_key(graph.objects[relation]), column_name=upstream_column)
            for relation, upstream_column in sources
            if relation in graph.objects
        ]
        if deps:
            deps_by_column[column] = deps
    return dg.TableColumnLineage(deps_by_column=deps_by_column) if deps_by_column else None


def code_reference(path: Path) -> dg.CodeReferencesMetadataValue:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # stable in practice since 1.7
        return dg.CodeReferencesMetadataValue(
            code_references=[dg.LocalFileCodeReference(file_path=str(path), line_number=1)]
        )


def moved(result: RefreshResult) -> bool:
    """Whether the refresh changed the object (an incremental refresh whose changed docs were
    none of its own rewrote nothing)."""
    return result.mode != "unchanged" and (result.mode != "incremental" or bool(result.rewritten_ids))


def describe(result: RefreshResult) -> str:
    changed = "" if result.changed_docs <= 0 else f", {result.changed_docs:,} changed docs"
    if result.rewritten_ids is not None and result.changed_docs > 0:
        changed += f" ({len(result.rewritten_ids):,} of them in this object)"
    rows = "" if result.row_count is None else f", {result.row_count:,} rows"
    return f"{result.name}: {result.mode} in {result.seconds:.2f}s{changed}{rows}"


def waiting_text(forms: Sequence[str]) -> str:
    return ("waiting for form " if len(forms) == 1 else "waiting for forms ") + ", ".join(
        f"`{form}`" for form in forms
    )


def asset_deps(catalog: ViewCatalog, obj: SqlObject, dbs: Sequence[str]) -> list[dg.AssetKey]:
    graph = catalog.graph
    deps = {view_asset_key(graph.objects[name]) for name in obj.depends_on if name in graph.objects}
    deps |= {raw_asset_key(db) for name in obj.depends_on for db in relation_sources(name, dbs)}
    # The data dictionary's tables (form_choices): the dictionary asset writes them.
    deps |= {FORM_DICTIONARY_KEY for name in obj.depends_on if name in DICTIONARY_RELATIONS}
    return sorted(deps, key=lambda key: key.to_user_string())


def asset_spec(catalog: ViewCatalog, entry: CatalogEntry, dbs: Sequence[str]) -> dg.AssetSpec:
    obj = entry.obj
    description = obj.description or f"{obj.kind} {obj.name}"
    tags = {}
    if entry.waiting_for:
        description = (
            f"{waiting_text(entry.waiting_for_forms).capitalize()}: not in this deployment (yet); "
            f"built on the first run after the form appears. {description}"
        )
        tags[WAITING_TAG] = "__".join(entry.waiting_for_forms)[:63]  # Dagster's limit for tag values
    return dg.AssetSpec(
        view_asset_key(obj),
        deps=asset_deps(catalog, obj, dbs),
        group_name=obj.layer,
        kinds={"postgres", "sql"},
        description=description,
        code_version=obj.code_version,
        skippable=True,
        tags=tags,
        metadata={
            "dagster/table_name": f"{entry.schema}.{obj.name}",
            "materialized": obj.kind,
            "dagster/code_references": code_reference(obj.path),
            **({RAW_DOCS_METADATA: raw_docs} if (raw_docs := raw_docs_filter(obj)) else {}),
        },
    )


@dataclass
class LayerRun:
    """What one run of the view layers did not build, and why: the objects that read them are
    not built either (as Dagster skips the steps downstream of a failed or skipped one)."""

    not_built: dict[str, str] = field(default_factory=dict)  # name -> why
    failed: dict[str, Exception] = field(default_factory=dict)  # name -> error, for the step's failure

    def blocked_by(self, obj: SqlObject) -> str | None:
        return next((name for name in obj.depends_on if name in self.not_built), None)


def refresh_view(
    context: dg.AssetExecutionContext,
    conn: psycopg.Connection,
    catalog: ViewCatalog,
    entry: CatalogEntry,
    lineage: dg.TableColumnLineage | None,
) -> Iterator[dg.AssetObservation | dg.MaterializeResult]:
    """Refresh one object and check what it built; an object waiting for a form is observed."""
    obj, key = entry.obj, view_asset_key(entry.obj)
    # An asset waiting for a form has no checks yet (nothing to check; they come with the form).
    # The others always check what they built; one whose input disappeared since loading (a
    # form doc deleted) fails, saying so, until the forms sensor has reloaded the location.
    waiting = bool(entry.waiting_for)
    started = time.monotonic()
    try:
        built, result = refresh_entry(conn, catalog, obj.name)
    except AbsentInput as exc:
        if not waiting:
            raise dg.Failure(f"{exc}; the code location reloads with the forms") from None
        context.log.info(f"{obj.name}: not built, {exc}")
        yield dg.AssetObservation(asset_key=key, metadata={"waiting": str(exc)})
        return
    if moved(result):  # each log line is an event Dagster stores: none for nothing done
        context.log.info(describe(result))
    selected = context.selected_asset_check_keys
    check_results = [
        r
        for r in ([] if waiting else checks.run_checks(conn, obj, key, built, result, context.log))
        if dg.AssetCheckKey(key, r.check_name) in selected
    ]
    metadata: dict = {
        "mode": result.mode,
        "changed_docs": max(result.changed_docs, 0),
        "rewritten_docs": len(result.rewritten_ids or ()),
        "duration_seconds": round(time.monotonic() - started, 3),
        "dagster/table_name": f"{built.schema}.{obj.name}",
    }
    if result.row_count is not None:
        metadata["dagster/row_count"] = result.row_count
    if obj.kind != "function":
        held, comments_set = apply_comments(conn, built)
        metadata["comments_set"] = comments_set
        if held is not None:
            metadata["dagster/column_schema"] = column_schema(held)
    if lineage:
        metadata["dagster/column_lineage"] = lineage
    yield dg.MaterializeResult(
        asset_key=key,
        metadata=metadata,
        check_results=check_results,
        # Dagster's provenance: unchanged while the rows are (a view: while its inputs are).
        data_version=dg.DataVersion(result.data_version) if result.data_version else None,
    )


def failed_blocking_check(
    events: Sequence[dg.AssetObservation | dg.MaterializeResult], blocking: set[dg.AssetCheckKey]
) -> str | None:
    """The first blocking check that failed with ERROR severity in an object's results."""
    return next(
        (
            r.check_name
            for event in events
            if isinstance(event, dg.MaterializeResult)
            for r in event.check_results or ()
            if not r.passed
            and r.severity == dg.AssetCheckSeverity.ERROR
            and dg.AssetCheckKey(event.asset_key, r.check_name) in blocking
        ),
        None,
    )


def view_layers_asset(catalog: ViewCatalog, dbs: Sequence[str]) -> dg.AssetsDefinition:
    """Every object of the catalog as its own asset, one step for all (can_subset: a run refreshes
    the objects it selected)."""
    entries = list(catalog)
    lineage = {
        entry.obj.name: lineage_metadata(catalog.graph, entry.obj)
        for entry in entries
        if catalog.traces_lineage(entry)
    }
    check_specs = [
        spec
        for entry in entries
        if not entry.waiting_for  # its checks come with the form
        for spec in checks.check_specs_for(entry.obj, view_asset_key(entry.obj))
    ]
    blocking = {spec.key for spec in check_specs if spec.blocking}

    @dg.multi_asset(
        name=VIEW_LAYERS_OP,
        specs=[asset_spec(catalog, entry, dbs) for entry in entries],
        check_specs=check_specs,
        can_subset=True,
    )
    def refresh_views(context: dg.AssetExecutionContext, postgres: PostgresResource):
        run = LayerRun()
        selected = context.selected_asset_keys
        with postgres.session() as conn:
            ensure_meta_schema(conn)  # once per run: every object's refresh state lives there
        for entry in entries:
            obj = entry.obj
            if view_asset_key(obj) not in selected:
                continue
            if upstream := run.blocked_by(obj):
                run.not_built[obj.name] = f"reads {upstream}, {run.not_built[upstream]}"
                context.log.info(f"{obj.name}: not built, it {run.not_built[obj.name]}")
                continue
            try:
                with postgres.session() as conn:
                    events = list(refresh_view(context, conn, catalog, entry, lineage.get(obj.name)))
            except Exception as exc:  # noqa: BLE001 - the others are built; the step fails after them
                context.log.error(f"{obj.name}: failed: {exc}")
                run.not_built[obj.name] = "which failed"
                run.failed[obj.name] = exc
                continue
            yield from events
            if not any(isinstance(e, dg.MaterializeResult) for e in events):
                run.not_built[obj.name] = "which waits for a form"
            elif check := failed_blocking_check(events, blocking):
                run.not_built[obj.name] = f"whose blocking check {check} failed"
        if run.failed:
            errors = "; ".join(f"{name}: {exc}" for name, exc in run.failed.items())
            raise dg.Failure(f"{len(run.failed)} of the view objects failed: {errors}") from next(
                iter(run.failed.values())
            )

    return refresh_views


def build_view_assets(catalog: ViewCatalog | None = None) -> list[dg.AssetsDefinition]:
    """The view layers as assets, one per catalog object (default: this deployment's catalog
    now), all computed by one subsettable step."""
    catalog = catalog or load_catalog()
    return [view_layers_asset(catalog, load_settings().couchdb_dbs)]
