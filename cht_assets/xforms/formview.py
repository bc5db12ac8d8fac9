"""Typed columns and SELECT statements for the `formview_<form>` views.

One view per form: the common report columns (`uuid`, `reported`, submitter, patient, ...)
followed by one typed column per leaf of the form, read from `raw.couchdb_docs`. Each repeat
group gets a child view `formview_<form>__<repeat>` with one row per array element. Values
arrive as strings; the casts are the `cht_to_*` functions of `sql/functions/`, which return NULL
for anything unparseable, so a bad answer never breaks a view, and `cast_failures_select`
counts those NULLs for the data-quality check.

Form ids, field names and JSON keys are untrusted: every identifier goes through
`sqlnames.quote_ident`/`quote_qualified` and every key or form id through `quote_literal`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cht_assets.sqlnames import (
    MAX_IDENTIFIER_BYTES,
    quote_ident,
    quote_literal,
    quote_qualified,
    safe_identifier,
)
from cht_assets.xforms.parse import NodePath, XForm

__all__ = [
    "COMMON_COLUMNS",
    "KINDS",
    "REPEAT_KEY_COLUMNS",
    "REQUIRED_FUNCTIONS",
    "Column",
    "cast_failures_select",
    "formview_columns",
    "formview_name",
    "formview_repeat_name",
    "formview_repeat_select",
    "formview_select",
]

RAW_DOCS = ("raw", "couchdb_docs")
# PostgreSQL decompresses a TOASTed jsonb on every access: a report doc read by 150 columns is
# decompressed 150 times (20x slower on the CHT delivery form). This join decompresses it once
# per row (`||` returns its detoasted operand); OFFSET 0 keeps the planner from inlining the
# expression back into every column. Filters still apply to `d` first.
_DOC = "report.doc"
_DETOAST_JOIN = "CROSS JOIN LATERAL (SELECT d.doc || '{}'::jsonb AS doc OFFSET 0) AS report"
# The schema sql/functions/*.sql create their functions in.
FUNCTION_SCHEMA = "public"
VIEW_PREFIX = "formview_"

COMMON_COLUMNS = (
    "uuid",
    "reported",
    "form_version",
    "submitter_uuid",
    "submitter_parent_uuid",
    "patient_uuid",
    "patient_id",
)
# PostgreSQL's limit on a table's columns (views allow 1664; the warehouse may materialise).
MAX_COLUMNS = 1600
# Key columns of a repeat view; `outer_repeat_index` only appears for a repeat inside a repeat.
REPEAT_KEY_COLUMNS = ("parent_uuid", "repeat_index", "outer_repeat_index")


@dataclass(frozen=True)
class Kind:
    """How a column is typed: its SQL type and the function casting the raw string
    (None: plain text, empty string -> NULL)."""

    sql_type: str
    cast_function: str | None


KINDS: Mapping[str, Kind] = {
    "text": Kind("text", None),
    "integer": Kind("integer", "cht_to_integer"),
    "bigint": Kind("bigint", "cht_to_bigint"),
    "numeric": Kind("numeric", "cht_to_numeric"),
    "date": Kind("date", "cht_to_date"),
    "timestamptz": Kind("timestamptz", "cht_to_timestamptz"),
    "select": Kind("text[]", "cht_to_text_array"),
    "latitude": Kind("numeric", "cht_geopoint_latitude"),
    "longitude": Kind("numeric", "cht_geopoint_longitude"),
}

# Canonical bind type -> the columns it becomes: (kind, suffix added to the column's name).
# Everything else (string, select1, tel, time, db:*, ...) is one text column.
_BIND_KINDS: Mapping[str, tuple[tuple[str, NodePath], ...]] = {
    "int": (("integer", ()),),
    "long": (("bigint", ()),),
    "decimal": (("numeric", ()),),
    "date": (("date", ()),),
    "dateTime": (("timestamptz", ()),),
    "select": (("select", ()),),
    "geopoint": (("latitude", ("latitude",)), ("longitude", ("longitude",))),
}
_TEXT: tuple[tuple[str, NodePath], ...] = (("text", ()),)

# Every function the generated SQL may call: each is `sql/functions/<name>.sql`.
REQUIRED_FUNCTIONS = (
    "cht_epoch_ms_to_timestamptz",
    "cht_as_jsonb_array",
    *sorted({kind.cast_function for kind in KINDS.values() if kind.cast_function}),
)


@dataclass(frozen=True)
class Column:
    """One typed column of a formview.

    `json_path` is the key path from the row's JSON: the report doc for the main view
    (`("fields", "group", "q")`), the array element for a repeat view (`("baby_details", "q")`).
    """

    name: str
    sql_type: str
    json_path: tuple[str, ...]
    kind: str

    def __post_init__(self) -> None:
        # Columns may come back from persisted state: validate rather than trust.
        if isinstance(self.json_path, str) or not isinstance(self.name, str) or not self.name:
            raise ValueError(
                f"column needs a non-empty name and a key path, got {self.name!r}, {self.json_path!r}"
            )
        object.__setattr__(self, "json_path", tuple(self.json_path))
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}")
        if self.sql_type != KINDS[self.kind].sql_type:
            raise ValueError(
                f"column {self.name!r}: kind {self.kind} is {KINDS[self.kind].sql_type}, not {self.sql_type}"
            )
        if not self.json_path or not all(isinstance(p, str) for p in self.json_path):
            raise ValueError(f"column {self.name!r}: json_path must be a non-empty sequence of strings")
        quote_ident(self.name)  # raises for NUL bytes and names PostgreSQL would truncate
        for key in self.json_path:
            quote_literal(key)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sql_type": self.sql_type,
            "json_path": list(self.json_path),
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Column:
        return cls(
            name=data["name"],
            sql_type=data["sql_type"],
            json_path=tuple(data["json_path"]),
            kind=data["kind"],
        )


# ---------------------------------------------------------------------------------- names


def formview_name(form_id: str) -> str:
    """`formview_<form>`: readable, at most 63 bytes, never containing `__` (which marks a
    repeat view, so a form's view can never be mistaken for another form's repeat view)."""
    return _fit(VIEW_PREFIX + _name_part(form_id), form_id)


def formview_repeat_name(form_id: str, repeat: NodePath) -> str:
    """`formview_<form>__<repeat path>`; when too long, the form part is shortened and the
    tail of the repeat path kept, with a hash of both keeping names distinct."""
    form_part = _name_part(form_id)
    repeat_part = _name_part("/".join(repeat))
    name = f"{VIEW_PREFIX}{form_part}__{repeat_part}"
    if len(name) <= MAX_IDENTIFIER_BYTES:
        return name
    head = f"{VIEW_PREFIX}{form_part[:24].rstrip('_')}__"
    tail = repeat_part[-(MAX_IDENTIFIER_BYTES - len(head) - 9) :].lstrip("_") or "r"
    return f"{head}{tail}_{_digest(form_id + '/' + '/'.join(repeat))}"


def _name_part(raw: str) -> str:
    cleaned = re.sub(r"_{2,}", "_", safe_identifier(raw)).strip("_") or "x"
    # Cleaning keeps ASCII letters and digits; if it dropped others (non-Latin scripts,
    # accents) two ids could clean to the same name, so add a hash of the raw id.
    if re.sub(r"[^0-9a-z]", "", raw.lower()) != re.sub(r"[^0-9a-z]", "", cleaned):
        cleaned = f"{cleaned[:40]}_{_digest(raw)}"
    return cleaned


def _fit(name: str, raw: str) -> str:
    if len(name) <= MAX_IDENTIFIER_BYTES:  # ASCII only: characters == bytes
        return name
    return f"{name[: MAX_IDENTIFIER_BYTES - 9].rstrip('_')}_{_digest(raw)}"


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]


# -------------------------------------------------------------------------------- columns


def formview_columns(
    xform: XForm, known: Sequence[Column] = (), *, repeat: NodePath | None = None
) -> list[Column]:
    """The columns of the main view (repeat=None) or of one repeat view.

    `known` are the columns the view had so far (persisted by the caller): they come first,
    unchanged, so a field dropped by a new form version keeps its column and no existing name
    ever changes. New fields follow in document order. A field whose type changed keeps its
    old column and gets a second one named after the new kind (`q_integer`).
    """
    reserved = REPEAT_KEY_COLUMNS if repeat is not None else COMMON_COLUMNS
    _check_columns(known, reserved)
    taken = set(reserved) | {c.name for c in known}
    present = {(c.json_path, c.kind) for c in known}
    known_paths = {c.json_path for c in known}
    columns = list(known)
    prefix: NodePath = ("fields",) if repeat is None else ()
    for field in xform.fields_in(repeat):
        relative = field.path[len(repeat) :] if repeat is not None else field.path
        json_path = prefix + relative
        for kind, suffix in _BIND_KINDS.get(field.bind_type, _TEXT):
            if (json_path, kind) in present:
                continue
            raw_name = relative + suffix
            if not suffix and json_path in known_paths:
                raw_name += (kind,)
            name = _column_name(raw_name, taken, reserved)
            columns.append(Column(name, KINDS[kind].sql_type, json_path, kind))
            present.add((json_path, kind))
    return columns


def _column_name(raw_path: NodePath, taken: set[str], reserved: Sequence[str]) -> str:
    raw = "/".join(raw_path)
    # A field called `patient_id` or `uuid` must not shadow a common column: name it
    # `fields_patient_id` rather than a hash-suffixed `patient_id_1a2b3c4d`.
    if safe_identifier(raw) in reserved:
        raw = "fields/" + raw
    return safe_identifier(raw, taken)


def _check_columns(columns: Sequence[Column], reserved: Sequence[str]) -> None:
    names = [c.name for c in columns]
    if len(names) + len(reserved) > MAX_COLUMNS:
        raise ValueError(f"{len(names)} columns: more than PostgreSQL's {MAX_COLUMNS} per table")
    clashes = set(names) & set(reserved)
    if clashes:
        raise ValueError(f"columns clash with the view's own columns: {sorted(clashes)}")
    if len(set(names)) != len(names):
        raise ValueError("duplicate column names")


# ---------------------------------------------------------------------------------- SQL


def formview_select(form_id: str, columns: Sequence[Column]) -> str:
    """The SELECT of `formview_<form>`: one row per live report of the form."""
    _check_columns(columns, COMMON_COLUMNS)
    select_list = [f"{expression} AS {quote_ident(name)}" for name, expression in _common_expressions()]
    select_list += [f"{_cast(c, _DOC)} AS {quote_ident(c.name)}" for c in columns]
    return _select(select_list, [_DETOAST_JOIN], form_id)


def formview_repeat_select(
    form_id: str, repeat: NodePath, columns: Sequence[Column], *, enclosing: Sequence[NodePath] = ()
) -> str:
    """The SELECT of `formview_<form>__<repeat>`: one row per element of the repeat's array,
    keyed by (`parent_uuid`, `repeat_index`, 1-based). `enclosing` lists the repeats around
    this one, outermost first (`XForm.enclosing_repeats`); then `outer_repeat_index` holds their
    indexes."""
    _check_columns(columns, REPEAT_KEY_COLUMNS)
    joins, element, indexes = _repeat_joins(repeat, enclosing)
    select_list = [
        f"d._id AS {quote_ident('parent_uuid')}",
        f"{indexes[-1]} AS {quote_ident('repeat_index')}",
    ]
    if len(indexes) > 1:
        select_list.append(f"ARRAY[{', '.join(indexes[:-1])}] AS {quote_ident('outer_repeat_index')}")
    select_list += [f"{_cast(c, element)} AS {quote_ident(c.name)}" for c in columns]
    return _select(select_list, joins, form_id)


def cast_failures_select(
    form_id: str,
    columns: Sequence[Column],
    *,
    repeat: NodePath | None = None,
    enclosing: Sequence[NodePath] = (),
    doc_ids_param: str | None = None,
) -> str:
    """With `doc_ids_param` (a psycopg placeholder such as `%(ids)s`), only the reports whose
    `_id` is in the array bound to it are checked, and every other `%` is escaped.

    A query returning one row per typed column — (`column_name`, `sql_type`, `failures`,
    `examples`) — where `failures` counts the reports (repeat elements) whose raw value is
    not blank but whose cast is NULL, and `examples` is a jsonb array of up to 3
    `{"uuid", "value"}` (plus `"repeat_index"` for a repeat) objects. The main view also
    checks `reported`."""
    checks: list[tuple[str, str, str, str]] = []  # (name, sql_type, raw text, cast expression)
    if repeat is None:
        _check_columns(columns, COMMON_COLUMNS)
        joins = [_DETOAST_JOIN]
        element = _DOC
        keys = ["d._id AS uuid"]
        example, order = "'uuid', c.uuid", "c.uuid"
        checks.append(
            ("reported", "timestamptz", _json_text(_DOC, ("reported_date",)), _reported_expression())
        )
    else:
        _check_columns(columns, REPEAT_KEY_COLUMNS)
        joins, element, indexes = _repeat_joins(repeat, enclosing)
        keys = ["d._id AS uuid", f"{indexes[-1]} AS repeat_index"]
        example, order = "'uuid', c.uuid, 'repeat_index', c.repeat_index", "c.uuid, c.repeat_index"
    checks += [
        (c.name, c.sql_type, _json_text(element, c.json_path), _cast(c, element))
        for c in columns
        if c.kind != "text"
    ]
    if not checks:
        return (
            "SELECT NULL::text AS column_name, NULL::text AS sql_type, 0::bigint AS failures, "
            "'[]'::jsonb AS examples WHERE false"
        )
    # A random marker stands for the placeholder while `%` in names is escaped: a name cannot
    # forge it.
    marker = f"__cht_doc_ids_{secrets.token_hex(8)}__" if doc_ids_param else None
    # Parallel unnest() in the select list rather than a LATERAL (VALUES ...): the planner
    # would put a Memoize keyed on the whole doc in front of a LATERAL, hashing every report.
    checked = _select(
        [
            *keys,
            f"unnest(ARRAY[{', '.join(str(n) for n in range(1, len(checks) + 1))}]) AS ordinal",
            f"unnest(ARRAY[{', '.join(raw for _, _, raw, _ in checks)}]::text[]) AS raw_value",
            f"unnest(ARRAY[{', '.join(f'({cast}) IS NULL' for _, _, _, cast in checks)}]) AS failed",
        ],
        joins,
        form_id,
        scoped_to=marker,
    )
    targets = ",\n        ".join(
        f"({n}, {quote_literal(name)}, {quote_literal(sql_type)})"
        for n, (name, sql_type, _, _) in enumerate(checks, start=1)
    )
    query = (
        f"WITH checked AS (\n{checked}\n),\n"
        "failed AS (\n"
        f"    SELECT c.ordinal, jsonb_build_object({example}, 'value', c.raw_value) AS example,\n"
        f"        row_number() OVER (PARTITION BY c.ordinal ORDER BY {order}) AS example_rank\n"
        "    FROM checked AS c\n"
        "    WHERE c.failed AND c.raw_value ~ '\\S'\n"
        ")\n"
        "SELECT t.column_name, t.sql_type, count(f.ordinal) AS failures,\n"
        "    COALESCE(jsonb_agg(f.example ORDER BY f.example_rank) FILTER (WHERE f.example_rank <= 3), '[]'::jsonb)"
        " AS examples\n"
        f"FROM (VALUES\n        {targets}\n    ) AS t(ordinal, column_name, sql_type)\n"
        "LEFT JOIN failed AS f ON f.ordinal = t.ordinal\n"
        "GROUP BY t.ordinal, t.column_name, t.sql_type\n"
        "ORDER BY t.ordinal"
    )
    if marker and doc_ids_param:
        return query.replace("%", "%%").replace(marker, doc_ids_param)
    return query


def _select(
    select_list: Sequence[str], joins: Sequence[str], form_id: str, scoped_to: str | None = None
) -> str:
    conditions = [
        "d.doc ->> 'type' = 'data_record'",
        f"d.doc ->> 'form' = {quote_literal(form_id)}",
        "NOT d._deleted",
    ]
    if scoped_to:
        conditions.append(f"d._id = ANY({scoped_to})")
    lines = ["SELECT", "    " + ",\n    ".join(select_list), f"FROM {quote_qualified(*RAW_DOCS)} AS d"]
    lines += joins
    lines.append("WHERE " + "\n    AND ".join(conditions))
    return "\n".join(lines)


def _repeat_joins(repeat: NodePath, enclosing: Sequence[NodePath]) -> tuple[list[str], str, list[str]]:
    """LATERAL joins unnesting each repeat level (outermost first); returns them, the SQL of
    the innermost element, and the SQL of each level's 1-based index."""
    if not repeat:
        raise ValueError("a repeat path cannot be empty")
    levels = [*enclosing, repeat]
    for outer, inner in zip(levels, levels[1:], strict=False):
        if len(outer) >= len(inner) or inner[: len(outer)] != outer:
            raise ValueError(f"repeat {inner} is not inside {outer}")
    joins: list[str] = []
    indexes: list[str] = []
    element, previous = "d.doc", ()
    for level, path in enumerate(levels, start=1):
        relative = path[len(previous) :]
        key_path = ("fields", *relative) if level == 1 else relative
        array = f"{_function('cht_as_jsonb_array')}({element} #> {_text_array(key_path)})"
        alias = f"r{level}"
        joins.append(
            f"CROSS JOIN LATERAL jsonb_array_elements({array}) WITH ORDINALITY AS {alias}(item, idx)"
        )
        element, previous = f"{alias}.item", path
        indexes.append(f"{alias}.idx::integer")
    return joins, element, indexes


def _common_expressions() -> list[tuple[str, str]]:
    def text(*path: str) -> str:
        return f"NULLIF({_json_text(_DOC, path)}, '')"

    return [
        ("uuid", "d._id"),
        ("reported", _reported_expression()),
        ("form_version", text("form_version", "sha256")),
        ("submitter_uuid", text("contact", "_id")),
        ("submitter_parent_uuid", text("contact", "parent", "_id")),
        (
            "patient_uuid",
            f"COALESCE({text('fields', 'patient_uuid')}, {text('fields', 'inputs', 'contact', '_id')})",
        ),
        (
            "patient_id",
            f"COALESCE({text('patient_id')}, {text('fields', 'patient_id')}, {text('fields', 'patient_uuid')})",
        ),
    ]


def _reported_expression() -> str:
    return f"{_function('cht_epoch_ms_to_timestamptz')}({_json_text(_DOC, ('reported_date',))})"


def _cast(column: Column, element: str) -> str:
    raw = _json_text(element, column.json_path)
    function = KINDS[column.kind].cast_function
    return f"NULLIF({raw}, '')" if function is None else f"{_function(function)}({raw})"


def _json_text(element: str, path: Sequence[str]) -> str:
    return f"{element} #>> {_text_array(path)}"


def _text_array(path: Sequence[str]) -> str:
    return f"ARRAY[{', '.join(quote_literal(key) for key in path)}]::text[]"


def _function(name: str) -> str:
    return quote_qualified(FUNCTION_SCHEMA, name)
