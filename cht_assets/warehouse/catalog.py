"""The view catalog: which objects the view layers hold, decided from explicit inputs — the
`sql/` folder and the deployment's forms (with the formview columns seen so far).

    every file in sql/<layer>/<name>.sql                one object (a file wins over a generated one)
    contactview_hierarchy                               generated from the place types found at run time
    formview_<form>, formview_<form>_<repeat>           generated from each form's XForm

An object that reads the formview of a form the deployment does not have (yet) — directly or
through another object — *waits* for it: it is not built, and says so, until the form appears.
Pure of Dagster: `cht_assets.defs.views` maps the catalog to assets and checks, and
`python -m cht_assets.warehouse` refreshes it without Dagster.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import MappingProxyType

import psycopg

from cht_assets.couch.client import CouchClient
from cht_assets.couch.errors import CouchError, CouchUnavailable
from cht_assets.replica.forms import FormDoc, couchdb_forms, stored_forms
from cht_assets.replica.schema import RAW_RELATIONS
from cht_assets.settings import Settings
from cht_assets.sqlgraph import SqlGraph, SqlObject, load_sql_dir
from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.sqlgraph.files import SqlFile, read_sql_dir
from cht_assets.sqlgraph.model import code_version
from cht_assets.sqlnames import quote_ident, quote_literal
from cht_assets.warehouse.comments import read_column_descriptions
from cht_assets.warehouse.dictionary import CHOICE_COLUMNS, CHOICES_TABLE
from cht_assets.warehouse.dictionary import DDL as DICTIONARY_DDL
from cht_assets.warehouse.formviews import (
    LAYER as FORMVIEW_LAYER,
)
from cht_assets.warehouse.formviews import (
    FormviewSpec,
    all_known_columns,
    build_formview,
    form_xml,
    formview_buildable,
    formview_specs,
    known_columns,
    parse_report_forms,
)
from cht_assets.warehouse.hierarchy import (
    BUILTIN_PLACE_TYPES,
    HIERARCHY_DESCRIPTION,
    HIERARCHY_VIEW,
    hierarchy_descriptions,
    hierarchy_select,
    place_types,
)
from cht_assets.warehouse.refresh import Buildable, GroupRewrite, RefreshResult, refresh, relation_kind
from cht_assets.warehouse.state import META_RELATIONS
from cht_assets.warehouse.useinputs import (
    UseInput,
    empty_select,
    input_description,
    input_descriptions,
    input_notes,
    input_select,
    read_inputs,
)
from cht_assets.xforms.dictionary import column_descriptions, common_column_descriptions, form_dictionary
from cht_assets.xforms.formview import Column, formview_columns
from cht_assets.xforms.parse import XForm

SQL_ROOT = Path(__file__).resolve().parents[2] / "sql"
HIERARCHY_INPUTS = frozenset({"contactview_contact", "contactview_contact_type"})
LANGUAGE_FUNCTION = "dashboard_language"
FORMVIEW_NAME = re.compile(r"\bformview_[a-z0-9_]+\b")
LANGUAGE_CALL = re.compile(rf"\b{LANGUAGE_FUNCTION}\s*\(")
# `-- rewrite_by: chw_uuid = form_metadata.chw by uuid, reports counts rows` (GroupRewrite)
REWRITE_BY = re.compile(r"^(\w+)\s*=\s*(\w+)\.(\w+)\s+by\s+(\w+)\s*,\s*(\w+)\s+counts\s+rows$")
# `-- rewrite_stale: contactview_hierarchy: SELECT r.chw_uuid FROM {table} AS r …` (GroupRewrite)
REWRITE_STALE = re.compile(r"^(\w+)\s*:\s*(SELECT\b.*\{table\}.*)$", re.IGNORECASE | re.DOTALL)
# The data dictionary's tables (written by the dictionary asset, not by the catalog).
DICTIONARY_RELATIONS: dict[str, tuple[str, ...]] = {CHOICES_TABLE: CHOICE_COLUMNS}
# Relations the SQL may read that no SQL file defines, with their columns.
EXTERNAL_RELATIONS: dict[str, tuple[str, ...]] = {**RAW_RELATIONS, **META_RELATIONS, **DICTIONARY_RELATIONS}

logger = logging.getLogger(__name__)
BuildFor = Callable[[psycopg.Connection], Buildable]
KnownColumns = Mapping[str, Sequence[Column]]
NO_COLUMNS: KnownColumns = MappingProxyType({})
NO_SCHEMAS: Mapping[str, str] = MappingProxyType({})
BASE_LAYER = "base"  # cht-pipeline's base models (sql/base/)


class AbsentInput(LookupError):
    """What an object reads is not in the warehouse: a state to report, not a failure."""


@dataclass(frozen=True)
class CatalogEntry:
    """One object, how to produce its SQL when it runs, and the absent formviews it waits for."""

    obj: SqlObject
    build_for: BuildFor
    waiting_for: tuple[str, ...] = ()
    schema: str = "public"

    def build(self, conn: psycopg.Connection) -> Buildable:
        """Its SQL as it must be now, to be built in its schema."""
        return replace(self.build_for(conn), schema=self.schema)

    @property
    def name(self) -> str:
        return self.obj.name

    @property
    def waiting_for_forms(self) -> tuple[str, ...]:
        """`formview_pregnancy` -> `pregnancy`: what a user knows the input by."""
        return tuple(name.removeprefix("formview_") for name in self.waiting_for)


@dataclass(frozen=True)
class ViewCatalog:
    graph: SqlGraph
    entries: dict[str, CatalogEntry]  # in build order
    forms_version: str
    dependents_of: dict[str, tuple[str, ...]] = field(default_factory=dict)
    file_names: frozenset[str] = frozenset()  # of sql/: they take precedence over generated objects

    @property
    def search_path(self) -> str | None:
        """What the SQL's unqualified names must resolve through when some layer has a schema of
        its own (the base models read each other by name, as in cht-pipeline); None otherwise."""
        extra = sorted({entry.schema for entry in self} - {"public"})
        if not extra:
            return None
        return ", ".join(['"$user"', "public", *map(quote_ident, extra)])

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries.values())

    def __getitem__(self, name: str) -> CatalogEntry:
        return self.entries[name]

    def traces_lineage(self, entry: CatalogEntry) -> bool:
        """Whether `entry`'s column lineage is worth tracing in its SQL: not for a generated
        formview, whose form says which report field feeds each column (all read the raw
        `doc`), and whose wide SELECT takes sqlglot seconds (30 s for the sample forms')."""
        return not entry.obj.is_function and (
            entry.obj.layer != FORMVIEW_LAYER or entry.obj.name in self.file_names
        )

    def dependents(self, name: str) -> list[CatalogEntry]:
        """The objects downstream of `name`, in build order."""
        return [self.entries[dep] for dep in self.dependents_of.get(name, ())]

    def waiting(self) -> list[CatalogEntry]:
        return [entry for entry in self if entry.waiting_for]

    def version_for(self, forms: Sequence[FormDoc], known: KnownColumns = NO_COLUMNS) -> str:
        """The `forms_version` a catalog of these forms would have (same sql/), without building it."""
        return version_of(formview_entries(formview_layouts(forms, known, set(self.file_names))))


def static_entry(obj: SqlObject, descriptions: Mapping[str, str] | None = None) -> CatalogEntry:
    """A hand-written object (or one generated once, when the catalog is made); its column
    descriptions from `descriptions`, else from its `.columns.yaml`."""
    rewrite = group_rewrite(obj)
    built = Buildable(
        name=obj.name,
        layer=obj.layer,
        kind=obj.kind,
        sql=obj.sql,
        code_version=obj.code_version,
        unique_key=obj.unique_key or ("uuid",),
        doc_key=rewrite.column if rewrite else obj.config.get("doc_key", (obj.unique_key or ("uuid",))[0]),
        indexes=obj.indexes,
        # `-- affected_sql: SELECT <doc key> FROM {table} WHERE … %s …`: the rows an incremental
        # refresh also rewrites for the changed doc ids bound as %s (docs the rows read but are
        # not keyed by: a renamed place, a moved CHW).
        affected_sql=obj.config.get("affected_sql", ""),
        gin_indexes=obj.gin_indexes,
        versioned_by_rows=obj.kind == "view" and obj.config.get("data_version") == "rows",
        raw_docs=obj.config.get("raw_docs", ""),
        rewrite=rewrite,
        description=obj.description,
        column_descriptions=read_column_descriptions(obj) if descriptions is None else descriptions,
    )
    version_sql = obj.config.get("rebuild_on_change")
    if version_sql:
        return CatalogEntry(obj, partial(versioned_by_data, built, version_sql))
    return CatalogEntry(obj, lambda conn: built)


def group_rewrite(obj: SqlObject) -> GroupRewrite | None:
    """The object's `-- rewrite_by:` header: a rollup (`materialized: table`) of a relation it reads."""
    text = obj.config.get("rewrite_by")
    if text is None:
        if "rewrite_stale" in obj.config:
            raise SqlGraphError(obj.path, None, "rewrite_stale: only with rewrite_by")
        return None
    match = REWRITE_BY.match(text)
    if not match or obj.kind != "table" or match[2] not in obj.depends_on:
        raise SqlGraphError(
            obj.path,
            None,
            "rewrite_by: expected `<column> = <relation read>.<column> by <its doc key>, <column> "
            f"counts rows` on a `materialized: table`; got {text!r}",
        )
    stale = obj.config.get("rewrite_stale")
    if stale is None:
        return GroupRewrite(*match.groups())
    followed = REWRITE_STALE.match(stale)
    if not followed or followed[1] not in obj.depends_on or followed[1] == match[2]:
        raise SqlGraphError(
            obj.path,
            None,
            "rewrite_stale: expected `<another relation read>: SELECT <the groups> FROM {table} …`; "
            f"got {stale!r}",
        )
    return GroupRewrite(*match.groups(), *followed.groups())


def versioned_by_data(built: Buildable, version_sql: str, conn: psycopg.Connection) -> Buildable:
    """`-- rebuild_on_change: SELECT …`: the object also versioned by what that query returns now,
    so that a change there rebuilds it in full. For an input outside the rows' own docs (the
    settings doc's contact types decide which contacts are persons), which a refresh by changed
    doc ids would never revisit."""
    rows = conn.execute(version_sql).fetchall()
    return replace(built, code_version=code_version(f"{built.code_version} {rows!r}"))


# The rows below the changed docs whose hierarchy row would read differently for them.
HIERARCHY_AFFECTED = """WITH moved AS (
  SELECT changed.uuid
  FROM unnest(%s::text[]) AS changed (uuid)
  LEFT JOIN {table} AS old ON old.uuid = changed.uuid
  LEFT JOIN contactview_contact AS new ON new.uuid = changed.uuid
  WHERE old.uuid IS NULL OR new.uuid IS NULL
    OR (old.name, old.contact_type) IS DISTINCT FROM (new.name, new.contact_type)
)
SELECT uuid FROM {table} WHERE area_uuids && ARRAY(SELECT uuid FROM moved)"""


def build_hierarchy(conn: psycopg.Connection) -> Buildable:
    types = place_types(conn)
    sql = hierarchy_select(types)
    # Versioned by the SQL generated now: new place types must rebuild the table. A table, not a
    # view: every chart and RLS filter reads it, and a view computed each contact's ancestors
    # again per query (minutes per chart at 300 000 docs). A place whose name or type changed
    # (or that came or went) rewrites the rows below it too, found by area_uuids: those columns
    # are theirs. Any other edit of a place rewrites its own row only (at 200 000 docs, 1 % of
    # them edited rewrote whole districts: 6 s, as much as the full build).
    return Buildable(
        HIERARCHY_VIEW,
        "contactviews",
        "incremental",
        sql,
        code_version(sql),
        ("uuid",),
        "uuid",
        indexes=(("place_uuid",), ("parent_uuid",)),
        affected_sql=HIERARCHY_AFFECTED,
        gin_indexes=("area_uuids",),
        description=HIERARCHY_DESCRIPTION,
        column_descriptions=hierarchy_descriptions(types),
    )


def hierarchy_entry() -> CatalogEntry:
    """Generated at run time from the place types found in the data; the built-in types give
    the load-time shape (and the dependencies)."""
    template = SqlObject.from_sql(
        HIERARCHY_VIEW,
        hierarchy_select(BUILTIN_PLACE_TYPES),
        layer="contactviews",
        config={
            "materialized": "incremental",
            "unique_key": "uuid",
            "description": HIERARCHY_DESCRIPTION,
        },
    )
    return CatalogEntry(template, build_hierarchy)


def with_dictionary_tables(build_for: BuildFor) -> BuildFor:
    """An object reading the dictionary's tables: they are created (empty) if the dictionary
    asset has not run yet, so that it builds with no labels instead of failing."""

    def build(conn: psycopg.Connection) -> Buildable:
        if conn.execute("SELECT to_regclass(%s)", (f"public.{CHOICES_TABLE}",)).fetchone()[0] is None:
            conn.execute(DICTIONARY_DDL)
        return build_for(conn)

    return build


def language_sql(language: str | None) -> str:
    """`dashboard_language()`: DASHBOARD_LANGUAGE (a quoted literal) when set, else the
    deployment's `locale` (its `settings` doc, read when called), else `en`."""
    chosen = f"CAST({quote_literal(language)} AS text)" if language else "CAST(NULL AS text)"
    return f"""-- raw_docs: _id = 'settings'
-- The language of the dashboards' labels: DASHBOARD_LANGUAGE, else the settings doc's locale, else en.
-- SECURITY DEFINER: the label views call it with the reader's rights, and readers never see raw;
-- it returns one language code, and its search_path is fixed so that no reader's schema can
-- shadow what it reads.
CREATE OR REPLACE FUNCTION public.{LANGUAGE_FUNCTION}()
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(
    nullif({chosen}, ''),
    (
      SELECT nullif(coalesce(s.doc #>> '{{settings,locale}}', s.doc ->> 'locale'), '')
      FROM raw.couchdb_docs AS s
      WHERE s._id = 'settings' AND NOT s._deleted
      ORDER BY s.source = 'medic' DESC, s.source
      LIMIT 1
    ),
    'en'
  )
$$;
"""


def language_entry(language: str | None) -> CatalogEntry:
    """Generated once, when the catalog is made, from the DASHBOARD_LANGUAGE setting."""
    return static_entry(SqlObject.from_sql(LANGUAGE_FUNCTION, language_sql(language), layer="functions"))


def build_current_formview(conn: psycopg.Connection, spec: FormviewSpec) -> Buildable:
    """The formview as its form is now (it may have changed since the catalog was made)."""
    try:
        xml = form_xml(conn, spec)
    except LookupError as exc:
        raise AbsentInput(f"form doc {spec.doc_id!r} is no longer in the warehouse") from exc
    built = build_formview(conn, spec, xml)
    return replace(
        built, description=spec.description, column_descriptions=formview_descriptions(conn, spec, xml)
    )


def dropped_field_description(column: Column, *, repeat: bool) -> str:
    """A formview column whose field the form no longer has (its path below `fields`, or
    below the repeat element)."""
    steps = column.json_path if repeat else column.json_path[1:]
    return (
        f"Field {'/'.join(steps)} ({column.kind}): no longer in the form; "
        "from reports made with an earlier version."
    )


def formview_descriptions(conn: psycopg.Connection, spec: FormviewSpec, xml: str) -> dict[str, str]:
    """Each column of the formview described from its form `xml`: the common columns, each
    field's label, type and choices, and the columns kept for fields the form dropped."""
    known = known_columns(conn, spec.view)
    # A column kept for a field newer form versions dropped (columns once seen stay).
    kept = {
        column.name: dropped_field_description(column, repeat=spec.repeat is not None) for column in known
    }
    fields = column_descriptions(form_dictionary(xml, {spec.view: known}), repeat=spec.repeat)
    return {**kept, **common_column_descriptions(repeat=spec.repeat is not None), **fields}


FormviewLayout = tuple[FormviewSpec, XForm, list[Column]]


def formview_layouts(
    forms: Sequence[FormDoc], known: KnownColumns, reserved: set[str]
) -> list[FormviewLayout]:
    """Each formview's spec, XForm and columns, as the form is now; unreadable forms make none
    (the `xforms_parse` check reports them)."""
    parsed = parse_report_forms(forms)[0]
    xforms = {(source, doc_id): xform for source, doc_id, xform in parsed}
    layouts = []
    for spec in formview_specs(parsed, reserved):
        xform = xforms[(spec.source, spec.doc_id)]
        layouts.append(
            (spec, xform, formview_columns(xform, list(known.get(spec.view, ())), repeat=spec.repeat))
        )
    return layouts


def formview_entries(layouts: Sequence[FormviewLayout]) -> list[CatalogEntry]:
    """One per report form and repeat group (see `formview_layouts`)."""
    entries = []
    for spec, xform, columns in layouts:
        built = formview_buildable(spec, xform, columns)
        config = {
            "materialized": "incremental",
            "unique_key": ", ".join(spec.unique_key),
            "doc_key": spec.doc_key,
            "description": spec.description,
            "cast_check": "true",
            "raw_docs": f"doc ->> 'type' = 'data_record' AND doc ->> 'form' = {quote_literal(spec.form_id)}",
        }
        template = SqlObject.from_sql(spec.view, built.sql, layer=FORMVIEW_LAYER, config=config)
        entries.append(CatalogEntry(template, partial(build_current_formview, spec=spec)))
    return entries


def input_entries(
    inputs: Sequence[UseInput], columns: Mapping[str, Sequence[Column]], relations: set[str]
) -> tuple[list[CatalogEntry], dict[str, list[str]]]:
    """One view per use-view input, over its form's formview as the form is now. A form the
    deployment lacks (its formview not in `relations`) gives a view over the absent formview,
    which waits, or no rows when the input is optional. Also what each use view's inputs
    lack (fields not found, optional forms absent), by use view."""
    entries, notes = [], defaultdict(list)
    for use_input in inputs:
        if use_input.optional and use_input.formview not in relations:
            sql, note = empty_select(use_input), input_notes(use_input, (), form_absent=True)
        else:
            sql, missing = input_select(use_input, columns.get(use_input.formview, ()))
            note = input_notes(use_input, missing)
        if note:
            notes[use_input.owner].append(note)
        config = {
            "materialized": "view",
            "unique_key": "uuid",
            "description": input_description(use_input, note),
        }
        obj = SqlObject.from_sql(
            use_input.view, sql, layer=use_input.layer, path=use_input.source, config=config
        )
        descriptions = input_descriptions(use_input, columns.get(use_input.formview, ()))
        entries.append(static_entry(obj, descriptions))
    return entries, dict(notes)


def with_notes(obj: SqlObject, notes: Sequence[str]) -> SqlObject:
    """The object with what its inputs lack added to its description."""
    if not notes:
        return obj
    description = " ".join(filter(None, (obj.description, *notes)))
    return replace(obj, config={**obj.config, "description": description})


def version_of(entries: Sequence[CatalogEntry]) -> str:
    """Changes when a formview appears, goes or changes its SQL (a new field, a new repeat)."""
    text = "\n".join(sorted(f"{entry.name} {entry.obj.code_version}" for entry in entries))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def formview_references(files: Sequence[SqlFile]) -> set[str]:
    return {name for sql_file in files for name in FORMVIEW_NAME.findall(sql_file.text)}


def waiting_for(graph: SqlGraph, awaited: set[str]) -> dict[str, tuple[str, ...]]:
    """For each object, the absent relations it reads directly or through other objects."""
    found: dict[str, tuple[str, ...]] = {}
    for name in graph.order():
        absent = set()
        for dep in graph.objects[name].depends_on:
            absent |= {dep} if dep in awaited else set(found.get(dep, ()))
        found[name] = tuple(sorted(absent))
    return found


def build_catalog(
    forms: Sequence[FormDoc],
    known: KnownColumns = NO_COLUMNS,
    *,
    sql_root: Path = SQL_ROOT,
    schemas: Mapping[str, str] = NO_SCHEMAS,
    language: str | None = None,
) -> ViewCatalog:
    """Every SQL file plus the generated objects, each in the schema `schemas` gives its layer
    (default public), `dashboard_language()` returning `language` (DASHBOARD_LANGUAGE; None:
    the deployment's locale); raises SqlGraphError (file and line) when the SQL does not parse, names an
    unknown relation or makes a cycle."""
    files = read_sql_dir(sql_root)
    file_names = {sql_file.name for sql_file in files}
    layouts = formview_layouts(forms, known, file_names)
    formviews = formview_entries(layouts)
    inputs = read_inputs(sql_root)
    formview_columns_now = {spec.view: columns for spec, _, columns in layouts}
    # The hierarchy is generated over the contact views: only where the folder has them.
    hierarchy = [hierarchy_entry()] if file_names >= HIERARCHY_INPUTS else []
    # The language function: only where some SQL calls it.
    language_fn = [language_entry(language)] if any(LANGUAGE_CALL.search(f.text) for f in files) else []
    relations = file_names | {entry.name for entry in formviews}
    inputs_now, input_gaps = input_entries(inputs, formview_columns_now, relations)
    generated = [
        entry for entry in (*hierarchy, *language_fn, *formviews, *inputs_now) if entry.name not in file_names
    ]
    known_names = file_names | {entry.name for entry in generated}
    # A formview the SQL reads whose form this deployment lacks: an external relation with no
    # asset behind it, so that what reads it waits instead of failing the whole code location.
    referenced = formview_references(files) | {i.formview for i in inputs if not i.optional}
    awaited = {name for name in referenced if name not in known_names}
    graph = load_sql_dir(
        sql_root,
        external_relations={**EXTERNAL_RELATIONS, **{name: () for name in awaited}},
        extra_objects=[entry.obj for entry in generated],
    )
    build_fors = {entry.name: entry.build_for for entry in generated}
    absent = waiting_for(graph, awaited)
    entries = {}
    for name in graph.order():
        obj = with_notes(graph.objects[name], input_gaps.get(name, ()))
        build_for = build_fors.get(name) or static_entry(obj).build_for
        if DICTIONARY_RELATIONS.keys() & set(obj.depends_on):
            build_for = with_dictionary_tables(build_for)
        entries[name] = CatalogEntry(obj, build_for, absent[name], schemas.get(obj.layer, "public"))
    order = {name: index for index, name in enumerate(graph.order())}
    dependents = {
        name: tuple(sorted(graph.downstream(name), key=order.__getitem__)) for name in graph.order()
    }
    return ViewCatalog(graph, entries, version_of(formviews), dependents, frozenset(file_names))


def deployment_forms(
    postgres_url: str, couch: Sequence[CouchClient]
) -> tuple[list[FormDoc], dict[str, list[Column]]]:
    """The deployment's forms and the formview columns seen so far: from the warehouse, or
    from CouchDB when the warehouse has none yet (the first run on an empty warehouse builds
    every formview). Neither reachable: no forms, and a warning (loading must not fail)."""
    forms: list[FormDoc] = []
    known: dict[str, list[Column]] = {}
    try:
        with psycopg.connect(postgres_url, connect_timeout=3, autocommit=True) as conn:
            forms, known = stored_forms(conn), all_known_columns(conn)
    except psycopg.OperationalError as exc:
        logger.warning("forms not read from PostgreSQL: unreachable (%s)", type(exc).__name__)
    if forms:
        return forms, known
    for client in couch:
        try:
            forms += couchdb_forms(client)
        except CouchUnavailable as exc:  # the server is down: the other databases are too
            logger.warning("forms not read from CouchDB: %s", exc)
            break
        except CouchError as exc:  # its message names the database, never credentials
            logger.warning("forms not read from CouchDB: %s", exc)
    return forms, known


def deployment_catalog(settings: Settings, *, sql_root: Path = SQL_ROOT) -> ViewCatalog:
    """The catalog of the configured deployment as it is now (see `deployment_forms`)."""
    couch = [
        CouchClient(settings.couchdb_url, db, timeout=10, connect_timeout=3) for db in settings.couchdb_dbs
    ]
    return build_catalog(
        *deployment_forms(settings.postgres_url, couch),
        sql_root=sql_root,
        schemas=layer_schemas(settings),
        language=settings.dashboard_language,
    )


def layer_schemas(settings: Settings) -> dict[str, str]:
    """BASE_SCHEMA: cht-pipeline's base models where the deployment's queries look for them."""
    return {BASE_LAYER: settings.base_schema}


def absent_relations(conn: psycopg.Connection, names: Sequence[str]) -> list[str]:
    return [name for name in names if relation_kind(conn, name) is None]


def refresh_entry(
    conn: psycopg.Connection, catalog: ViewCatalog, name: str
) -> tuple[Buildable, RefreshResult]:
    """Refresh one object as it must be now. Raises AbsentInput when an input it waits for is
    still absent (or its form doc has gone)."""
    entry = catalog[name]
    missing = absent_relations(conn, entry.waiting_for)
    if missing:
        raise AbsentInput(f"waiting for {', '.join(missing)}")
    if catalog.search_path:
        conn.execute("SELECT set_config('search_path', %s, false)", (catalog.search_path,))
    built = entry.build(conn)
    dependents = [(dep.name, dep.schema, partial(dep.build, conn)) for dep in catalog.dependents(name)]
    return built, refresh(conn, built, dependents, entry.obj.depends_on)
