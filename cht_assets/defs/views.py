"""One Dagster asset per SQL object of the view layers, its dependencies parsed from the SQL.

Objects come from the files in `sql/` and from generators (the hierarchy view, one formview
per form). Each asset refreshes its object in PostgreSQL and runs its checks in the same step:
blocking checks stop wrong numbers from flowing downstream.
"""

import logging
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import dagster as dg
import psycopg

from cht_assets.defs import checks
from cht_assets.defs.raw import raw_asset_key
from cht_assets.defs.resources import PostgresResource
from cht_assets.replica.schema import compat_relation
from cht_assets.settings import load_settings
from cht_assets.sqlgraph import SqlGraph, SqlObject, column_lineage, load_sql_dir
from cht_assets.sqlgraph.files import SqlFile, read_sql_dir
from cht_assets.sqlgraph.model import code_version
from cht_assets.warehouse.formviews import LAYER, FormviewSpec, build_formview, discover
from cht_assets.warehouse.hierarchy import BUILTIN_PLACE_TYPES, HIERARCHY_VIEW, hierarchy_select, place_types
from cht_assets.warehouse.refresh import Buildable, RefreshResult, refresh
from cht_assets.warehouse.state import ensure_meta_schema

SQL_ROOT = Path(__file__).resolve().parents[2] / "sql"
logger = logging.getLogger(__name__)
FORMVIEW_NAME = re.compile(r"\bformview_[a-z0-9_]+\b")

# Relations the SQL may read that no SQL file defines, with their columns (for lineage).
RAW_DOCS_COLUMNS = ("source", "_id", "_rev", "_deleted", "_conflicts", "saved_timestamp", "doc", "change_seq")
EXTERNAL_RELATIONS: dict[str, tuple[str, ...]] = {
    "raw.couchdb_docs": RAW_DOCS_COLUMNS,
    "raw.couchdb_progress": ("source", "seq", "pending", "updated_at", "docs", "live_docs"),
    "raw.couchdb_form_xml": ("source", "_id", "_rev", "attachment", "xml"),
    "couchdb": ("doc",),
    "couchdb_users_meta": ("doc",),
    "couchdb_medic_logs": ("doc",),
    "couchdb_medic_users": ("doc",),
    "couchdb_progress": ("seq", "source"),
    "cht_meta.refresh_state": (
        "object",
        "layer",
        "kind",
        "code_version",
        "change_seq",
        "row_count",
        "refreshed_at",
    ),
}

BuildFor = Callable[[psycopg.Connection], Buildable]


@dataclass(frozen=True)
class ViewObject:
    """An object of the graph and how to produce its SQL when it runs."""

    obj: SqlObject
    build_for: BuildFor


def buildable(obj: SqlObject, sql: str | None = None) -> Buildable:
    return Buildable(
        name=obj.name,
        layer=obj.layer,
        kind=obj.kind,
        sql=sql or obj.sql,
        code_version=obj.code_version,
        unique_key=obj.unique_key or ("uuid",),
        doc_key=obj.config.get("doc_key", (obj.unique_key or ("uuid",))[0]),
        indexes=obj.indexes,
    )


def view_asset_key(obj: SqlObject) -> dg.AssetKey:
    return dg.AssetKey([obj.layer, obj.name])


def hierarchy_object() -> ViewObject:
    """Generated at run time from the place types found in the data; the built-in types
    give the load-time shape (and the dependencies)."""
    template = SqlObject.from_sql(
        HIERARCHY_VIEW,
        hierarchy_select(BUILTIN_PLACE_TYPES),
        layer="contactviews",
        config={
            "materialized": "view",
            "unique_key": "uuid",
            "description": "Every contact with its ancestors and one uuid/name column pair per place type.",
        },
    )

    def build_for(conn: psycopg.Connection) -> Buildable:
        sql = hierarchy_select(place_types(conn))
        # Versioned by the SQL generated now: new place types must replace the view.
        return Buildable(HIERARCHY_VIEW, "contactviews", "view", sql, code_version(sql), ("uuid",), "uuid")

    return ViewObject(template, build_for)


def formview_object(spec: FormviewSpec, load_conn: psycopg.Connection) -> ViewObject:
    """The formview as the form is now; at run time it is generated again from the form then."""
    built = build_formview(load_conn, spec, remember=False)
    config = {
        "materialized": "incremental",
        "unique_key": ", ".join(spec.unique_key),
        "doc_key": spec.doc_key,
        "description": spec.description,
        "cast_check": "true",
    }
    template = SqlObject.from_sql(spec.view, built.sql, layer=LAYER, config=config)
    return ViewObject(template, partial(build_formview, spec=spec))


def generated_formviews(postgres_url: str, reserved: set[str]) -> list[ViewObject]:
    """One per form the raw layer holds; none when the database cannot be reached (yet)."""
    try:
        with psycopg.connect(postgres_url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SET standard_conforming_strings = on")
            return [formview_object(spec, conn) for spec in discover(conn, reserved)]
    except psycopg.OperationalError as exc:
        logger.warning("formviews not generated: PostgreSQL unreachable (%s)", type(exc).__name__)
        return []


def formview_references(files: Sequence[SqlFile]) -> set[str]:
    return {name for sql_file in files for name in FORMVIEW_NAME.findall(sql_file.text)}


def external_deps(relation: str, dbs: Sequence[str]) -> list[dg.AssetKey]:
    """The raw assets behind a relation the raw layer owns."""
    if relation.startswith("raw."):
        return [raw_asset_key(db) for db in dbs]
    if relation in EXTERNAL_RELATIONS and relation.startswith("couchdb"):
        if relation == "couchdb_progress":
            return [raw_asset_key(db) for db in dbs]
        return [raw_asset_key(db) for db in dbs if compat_relation(db) == relation]
    return []


def column_schema(conn: psycopg.Connection, name: str) -> dg.TableSchema:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (f'public."{name}"',),
    ).fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(column, type_name) for column, type_name in rows])


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


def describe(result: RefreshResult) -> str:
    changed = "" if result.changed_docs <= 0 else f", {result.changed_docs:,} changed docs"
    if result.rewritten_ids is not None and result.changed_docs > 0:
        changed += f" ({len(result.rewritten_ids):,} of them in this object)"
    rows = "" if result.row_count is None else f", {result.row_count:,} rows"
    return f"{result.name}: {result.mode} in {result.seconds:.2f}s{changed}{rows}"


def view_asset(graph: SqlGraph, view: ViewObject, all_views: dict[str, ViewObject], dbs: Sequence[str]):
    obj = view.obj
    deps = [view_asset_key(graph.objects[name]) for name in obj.depends_on if name in graph.objects]
    deps += [key for name in obj.depends_on if name not in graph.objects for key in external_deps(name, dbs)]
    order = {name: index for index, name in enumerate(graph.order())}
    downstream = sorted(graph.downstream(obj.name), key=order.__getitem__)
    dependents = [all_views[name] for name in downstream if name in all_views]
    check_specs = checks.check_specs_for(obj, view_asset_key(obj))
    lineage = lineage_metadata(graph, obj) if obj.kind != "function" else None

    @dg.asset(
        key=view_asset_key(obj),
        deps=sorted(set(deps), key=lambda key: key.to_user_string()),
        group_name=obj.layer,
        kinds={"postgres", "sql"},
        description=obj.description or f"{obj.kind} {obj.name}",
        code_version=obj.code_version,
        check_specs=check_specs,
        metadata={
            "dagster/table_name": f"public.{obj.name}",
            "materialized": obj.kind,
            "dagster/code_references": code_reference(obj.path),
        },
    )
    def refresh_object(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
        started = time.monotonic()
        with postgres.session() as conn:
            ensure_meta_schema(conn)
            built = view.build_for(conn)
            result = refresh(conn, built, [(d.obj.name, partial(d.build_for, conn)) for d in dependents])
            context.log.info(describe(result))
            check_results = checks.run_checks(conn, obj, built, result, context.log)
            metadata: dict = {
                "mode": result.mode,
                "changed_docs": max(result.changed_docs, 0),
                "rewritten_docs": len(result.rewritten_ids or ()),
                "duration_seconds": round(time.monotonic() - started, 3),
                "dagster/table_name": f"public.{obj.name}",
            }
            if result.row_count is not None:
                metadata["dagster/row_count"] = result.row_count
            if obj.kind != "function":
                metadata["dagster/column_schema"] = column_schema(conn, obj.name)
            if lineage:
                metadata["dagster/column_lineage"] = lineage
        return dg.MaterializeResult(metadata=metadata, check_results=check_results)

    return refresh_object


def static_object(obj: SqlObject) -> ViewObject:
    built = buildable(obj)
    return ViewObject(obj, lambda conn: built)


def build_view_assets(generated: Sequence[ViewObject] = ()) -> list[dg.AssetsDefinition]:
    """Every SQL file plus the generated objects; a file overrides a generated object of the same name."""
    settings = load_settings()
    files = read_sql_dir(SQL_ROOT)
    file_names = {sql_file.name for sql_file in files}
    generated = [hierarchy_object(), *generated, *generated_formviews(settings.postgres_url, file_names)]
    extra = [view for view in generated if view.obj.name not in file_names]
    # A use view may read the formview of a form not synced yet: until it is, that formview is
    # an external relation (the use view fails, saying so, instead of the whole code location).
    known = file_names | {view.obj.name for view in extra}
    awaited = {name: () for name in formview_references(files) if name not in known}
    graph = load_sql_dir(
        SQL_ROOT, external_relations={**EXTERNAL_RELATIONS, **awaited}, extra_objects=[v.obj for v in extra]
    )
    views = {name: static_object(obj) for name, obj in graph.objects.items()}
    views.update({view.obj.name: ViewObject(graph.objects[view.obj.name], view.build_for) for view in extra})
    return [view_asset(graph, views[name], views, settings.couchdb_dbs) for name in graph.order()]
