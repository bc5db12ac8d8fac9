"""Formviews generated from the XForms the raw layer keeps (`raw.couchdb_form_xml`).

One incremental table per form (`formview_<form>`) and per repeat group; columns once seen are
remembered in `cht_meta.formview_columns`, so a field removed in a new form version keeps its
column. Contact and training forms create contacts or nothing, not reports: no formview.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import psycopg

from cht_assets.replica.forms import FormDoc, stored_forms
from cht_assets.sqlgraph.model import code_version
from cht_assets.warehouse.refresh import Buildable
from cht_assets.xforms.formview import (
    Column,
    cast_failures_select,
    formview_columns,
    formview_name,
    formview_repeat_name,
    formview_repeat_select,
    formview_select,
)
from cht_assets.xforms.parse import NodePath, XForm, XFormError, parse_xform

LAYER = "formviews"
NOT_REPORT_FORMS = ("form:contact:", "form:training:")
KNOWN_COLUMNS_DDL = """
CREATE TABLE IF NOT EXISTS cht_meta.formview_columns (
    view       text        PRIMARY KEY,
    columns    jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class FormviewSpec:
    """One formview: the main view of a form (`repeat` None) or one of its repeat groups."""

    view: str
    form_id: str
    doc_id: str
    source: str
    repeat: NodePath | None = None
    nested: bool = False  # a repeat inside a repeat: its rows are also keyed by the outer indexes

    @property
    def unique_key(self) -> tuple[str, ...]:
        if self.repeat is None:
            return ("uuid",)
        return (
            ("parent_uuid", "outer_repeat_index", "repeat_index")
            if self.nested
            else ("parent_uuid", "repeat_index")
        )

    @property
    def doc_key(self) -> str:
        return self.unique_key[0]

    @property
    def description(self) -> str:
        what = "Reports" if self.repeat is None else f"Repeat group {'/'.join(self.repeat)} of reports"
        return f"{what} of form {self.form_id!r}, one typed column per field, generated from its XForm."


@dataclass(frozen=True)
class FormProblem:
    doc_id: str
    error: str


@functools.lru_cache(maxsize=256)
def parsed_xform(xml: str) -> XForm:
    """Each XForm is parsed once per process (XForm is immutable): every refresh re-reads the
    form, and most runs find it unchanged."""
    return parse_xform(xml)


def parse_report_forms(forms: Sequence[FormDoc]) -> tuple[list[tuple[str, str, XForm]], list[FormProblem]]:
    """(source, doc id, XForm) of the forms that make reports, and the forms that cannot be read."""
    parsed, problems = [], []
    for form in forms:
        if form.doc_id.startswith(NOT_REPORT_FORMS):
            continue
        try:
            parsed.append((form.source, form.doc_id, parsed_xform(form.xml)))
        except XFormError as exc:
            problems.append(FormProblem(form.doc_id, str(exc)[:300]))
    return parsed, problems


def report_forms(conn: psycopg.Connection) -> tuple[list[tuple[str, str, XForm]], list[FormProblem]]:
    return parse_report_forms(stored_forms(conn))


def formview_specs(forms: Sequence[tuple[str, str, XForm]], reserved: Collection[str]) -> list[FormviewSpec]:
    """A spec per form and repeat; names already taken (a hand-written file, an earlier form
    whose name cleans to the same) are skipped."""
    specs: list[FormviewSpec] = []
    taken = set(reserved)
    for source, doc_id, xform in forms:
        candidates = [FormviewSpec(formview_name(xform.form_id), xform.form_id, doc_id, source)]
        candidates += [
            FormviewSpec(
                formview_repeat_name(xform.form_id, repeat),
                xform.form_id,
                doc_id,
                source,
                repeat,
                nested=bool(xform.enclosing_repeats(repeat)),
            )
            for repeat in xform.repeats
        ]
        for spec in candidates:
            if spec.view not in taken:
                taken.add(spec.view)
                specs.append(spec)
    return specs


def form_xml(conn: psycopg.Connection, spec: FormviewSpec) -> str:
    """The XML of the formview's form as it is now in the warehouse."""
    row = conn.execute(
        "SELECT xml FROM raw.couchdb_form_xml WHERE source = %s AND _id = %s", (spec.source, spec.doc_id)
    ).fetchone()
    if row is None:
        raise LookupError(f"{spec.view}: form doc {spec.doc_id!r} is gone from raw.couchdb_form_xml")
    return row[0]


def known_columns(conn: psycopg.Connection, view: str) -> list[Column]:
    if conn.execute("SELECT to_regclass('cht_meta.formview_columns')").fetchone()[0] is None:
        return []
    row = conn.execute("SELECT columns FROM cht_meta.formview_columns WHERE view = %s", (view,)).fetchone()
    return [Column.from_json(item) for item in row[0]] if row else []


def all_known_columns(conn: psycopg.Connection) -> dict[str, list[Column]]:
    """The columns every formview has had so far (a field removed from its form keeps its column)."""
    if conn.execute("SELECT to_regclass('cht_meta.formview_columns')").fetchone()[0] is None:
        return {}
    rows = conn.execute("SELECT view, columns FROM cht_meta.formview_columns").fetchall()
    return {view: [Column.from_json(item) for item in columns] for view, columns in rows}


def columns_for(
    conn: psycopg.Connection, spec: FormviewSpec, xform: XForm, *, remember: bool
) -> list[Column]:
    """Known columns first, then new fields; with `remember`, kept for the next form version."""
    known = known_columns(conn, spec.view)
    columns = formview_columns(xform, known, repeat=spec.repeat)
    if remember and columns != known:
        conn.execute(KNOWN_COLUMNS_DDL)
        conn.execute(
            "INSERT INTO cht_meta.formview_columns (view, columns) VALUES (%s, %s) "
            "ON CONFLICT (view) DO UPDATE SET columns = excluded.columns, updated_at = now()",
            (spec.view, json.dumps([column.to_json() for column in columns])),
        )
    return columns


def formview_sql(spec: FormviewSpec, xform: XForm, columns: list[Column]) -> tuple[str, str, str]:
    """The formview's SELECT, and its cast-failure query over all docs and over bound ids."""
    if spec.repeat is None:
        select = formview_select(spec.form_id, columns)
        options: dict = {}
    else:
        options = {"repeat": spec.repeat, "enclosing": xform.enclosing_repeats(spec.repeat)}
        select = formview_repeat_select(spec.form_id, spec.repeat, columns, enclosing=options["enclosing"])
    return (
        select,
        cast_failures_select(spec.form_id, columns, **options),
        cast_failures_select(spec.form_id, columns, **options, doc_ids_param="%(ids)s"),
    )


def formview_buildable(spec: FormviewSpec, xform: XForm, columns: list[Column]) -> Buildable:
    select, failures, failures_by_ids = formview_sql(spec, xform, columns)
    indexes = (("reported",), ("submitter_uuid",), ("patient_uuid",)) if spec.repeat is None else ()
    return Buildable(
        spec.view, LAYER, "incremental", select, code_version(select), spec.unique_key, spec.doc_key, indexes,
        cast_failures_sql=failures, cast_failures_by_ids_sql=failures_by_ids,
    )  # fmt: skip


def build_formview(
    conn: psycopg.Connection, spec: FormviewSpec, xml: str, *, remember: bool = True
) -> Buildable:
    """The formview of the form `xml` (`form_xml`: the form may have changed since the code
    loaded)."""
    xform = parsed_xform(xml)
    return formview_buildable(spec, xform, columns_for(conn, spec, xform, remember=remember))
