"""One Dagster asset per object of the view catalog (cht_assets.warehouse.catalog), its
dependencies parsed from the SQL.

Each asset refreshes its object in PostgreSQL and runs its checks in the same step: blocking
checks stop wrong numbers from flowing downstream. What did not move costs little: a rollup
whose inputs did not change is not rebuilt, and a check whose inputs did not change carries its
finding (cht_assets.warehouse.versions, cht_assets.warehouse.checks); each materialization
carries the object's data version. An object waiting for a form the deployment
lacks is not attempted: its step succeeds without a materialization (what reads it is skipped,
nothing else), records an observation saying what it waits for, and its automation is off
until the form appears (cht_assets.defs.forms reloads the code location then).
"""

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

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


def view_asset(catalog: ViewCatalog, entry: CatalogEntry, dbs: Sequence[str]) -> dg.AssetsDefinition:
    obj = entry.obj
    key = view_asset_key(obj)
    lineage = lineage_metadata(catalog.graph, obj) if catalog.traces_lineage(entry) else None

    # An asset waiting for a form has no checks yet (nothing to check; they come with the form):
    # its step may then yield nothing and succeed. The others always check what they built;
    # one whose input disappeared since loading (a form doc deleted) fails, saying so, until
    # the forms sensor has reloaded the location.
    waiting = bool(entry.waiting_for)

    @dg.multi_asset(
        name=f"{obj.layer}__{obj.name}",
        specs=[asset_spec(catalog, entry, dbs)],
        check_specs=[] if waiting else checks.check_specs_for(obj, key),
    )
    def refresh_object(context: dg.AssetExecutionContext, postgres: PostgresResource):
        started = time.monotonic()
        with postgres.session() as conn:
            ensure_meta_schema(conn)
            try:
                built, result = refresh_entry(conn, catalog, obj.name)
            except AbsentInput as exc:
                if not waiting:
                    raise dg.Failure(f"{obj.name}: {exc}; the code location reloads with the forms") from None
                context.log.info(f"{obj.name}: not built, {exc}")
                yield dg.AssetObservation(asset_key=key, metadata={"waiting": str(exc)})
                return
            if moved(result):  # each log line is an event Dagster stores: none for nothing done
                context.log.info(describe(result))
            check_results = [] if waiting else checks.run_checks(conn, obj, built, result, context.log)
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

    return refresh_object


def build_view_assets(catalog: ViewCatalog | None = None) -> list[dg.AssetsDefinition]:
    """One asset per catalog object, in build order (default: this deployment's catalog now)."""
    catalog = catalog or load_catalog()
    dbs = load_settings().couchdb_dbs
    return [view_asset(catalog, entry, dbs) for entry in catalog]
