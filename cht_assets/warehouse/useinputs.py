"""Use-view inputs: the form fields a use view reads, mapped per deployment in YAML.

`sql/<layer>/<view>.inputs.yaml`, next to the view's SQL, names each input and where a
deployment keeps it (defaults: CHT's default config):

    pregnancy_registration:            # -> generated view useinput_pregnancy_registration
      form: pregnancy                  # the form id (its formview is formview_<form>)
      fields:
        lmp_date: {path: /data/lmp_date_8601, type: date}
    pregnancy_visit:
      form: pregnancy_home_visit
      optional: true                   # absent form: no rows, instead of waiting
      fields:
        place: {path: /data/place, type: text, choices: true}   # also place_label: the choice's words

Each input becomes a small generated view over the form's formview: its common report columns
and one column per field, named by the logical name, cast to the declared type. The column of a
field path is found in the formview's columns (the same naming as the formview itself); a field
the form does not have is NULL of its type and the view's description says so. A form the
deployment lacks makes the view (and what reads it) wait, like any absent formview, unless the
input is `optional`: then the view has no rows (and says so) until the form appears. A
deployment with renamed forms or fields edits the YAML, never the SQL. A select question marked
`choices: true` also gives `<name>_label`: the chosen code's words (`useview_choice_label`, from
the data dictionary, in the dashboards' language), else the code itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from cht_assets.sqlnames import quote_ident, quote_literal
from cht_assets.xforms.dictionary import common_column_descriptions
from cht_assets.xforms.formview import COMMON_COLUMNS, KINDS, Column, formview_name

PREFIX = "useinput_"
SUFFIX = ".inputs.yaml"
# The declared types a field may have: the formview kinds that are one scalar column.
TYPES = ("text", "integer", "bigint", "numeric", "date", "timestamptz")
COMMON_TYPES = {name: "timestamptz" if name == "reported" else "text" for name in COMMON_COLUMNS}
CHOICE_LABELS = "useview_choice_label"  # form, field, value -> the choice's words
LABEL_SUFFIX = "_label"


class InputsError(ValueError):
    """An inputs file that cannot be read: names the file."""


@dataclass(frozen=True)
class Field:
    name: str
    path: tuple[str, ...]  # below the form's root: /data/a/b -> ("a", "b")
    sql_type: str
    choices: bool = False  # a select question: also `<name>_label`, the choice's words

    @property
    def label_name(self) -> str | None:
        return self.name + LABEL_SUFFIX if self.choices else None


@dataclass(frozen=True)
class UseInput:
    name: str  # the input's view: useinput_<name>
    form: str
    fields: tuple[Field, ...]
    layer: str
    source: Path
    optional: bool = False

    @property
    def view(self) -> str:
        return PREFIX + self.name

    @property
    def formview(self) -> str:
        return formview_name(self.form)

    @property
    def owner(self) -> str:
        """The use view whose inputs file names it: `useview_x.inputs.yaml` -> `useview_x`."""
        return self.source.name.removesuffix(SUFFIX)


def _field(source: Path, name: str, spec: object) -> Field:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("path"), str):
        raise InputsError(f"{source}: field {name!r} needs a path")
    sql_type = spec.get("type", "text")
    if sql_type not in TYPES:
        raise InputsError(f"{source}: field {name!r} has type {sql_type!r}, not one of {', '.join(TYPES)}")
    parts = tuple(part for part in spec["path"].split("/") if part)
    if len(parts) < 2:
        raise InputsError(f"{source}: field {name!r}: path {spec['path']!r} is not /<root>/<field>")
    choices = spec.get("choices", False)
    if not isinstance(choices, bool) or (choices and sql_type != "text"):
        raise InputsError(f"{source}: field {name!r}: choices must be true or false, on a text field")
    return Field(name, parts[1:], sql_type, choices)


def read_inputs_file(path: Path, layer: str) -> list[UseInput]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputsError(f"{path}: not YAML ({exc})") from exc
    if not isinstance(data, Mapping):
        raise InputsError(f"{path}: expected a mapping of inputs")
    inputs = []
    for name, spec in data.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("form"), str):
            raise InputsError(f"{path}: input {name!r} needs a form")
        fields = spec.get("fields") or {}
        if not isinstance(fields, Mapping):
            raise InputsError(f"{path}: input {name!r}: fields must be a mapping")
        reserved = [field_name for field_name in fields if field_name in COMMON_COLUMNS]
        if reserved:
            raise InputsError(f"{path}: input {name!r}: {', '.join(reserved)} are common columns")
        optional = spec.get("optional", False)
        if not isinstance(optional, bool):
            raise InputsError(f"{path}: input {name!r}: optional must be true or false")
        fields_read = tuple(_field(path, str(k), v) for k, v in fields.items())
        labels = {f.label_name for f in fields_read} & {*COMMON_COLUMNS, *(f.name for f in fields_read)}
        if labels:
            raise InputsError(f"{path}: input {name!r}: {', '.join(sorted(labels))} is also a field's name")
        inputs.append(UseInput(str(name), spec["form"], fields_read, layer, path, optional))
    return inputs


def read_inputs(sql_root: Path) -> list[UseInput]:
    """Every input of every `*.inputs.yaml` under sql/; an input named twice is an error."""
    inputs: dict[str, UseInput] = {}
    for path in sorted(sql_root.glob(f"*/*{SUFFIX}")):
        for use_input in read_inputs_file(path, path.parent.name):
            if use_input.name in inputs:
                raise InputsError(
                    f"{path}: input {use_input.name!r} is also in {inputs[use_input.name].source}"
                )
            inputs[use_input.name] = use_input
    return list(inputs.values())


def _expression(field: Field, column: Column | None) -> str:
    if column is None:
        return f"CAST(NULL AS {field.sql_type})"
    source = quote_ident(column.name)
    if column.sql_type == field.sql_type:
        return source
    cast = KINDS[field.sql_type].cast_function
    text = f"CAST({source} AS text)"
    return f"public.{cast}({text})" if cast else text


def input_select(use_input: UseInput, columns: Sequence[Column]) -> tuple[str, list[str]]:
    """The input view's SELECT and the fields its form does not have."""
    by_path = {column.json_path: column for column in columns}
    selected = [f"  {quote_ident(name)}" for name in COMMON_COLUMNS]
    missing = []
    for field in use_input.fields:
        column = by_path.get(("fields", *field.path))
        if column is None:
            missing.append(field.name)
        selected.append(f"  {_expression(field, column)} AS {quote_ident(field.name)}")
        if field.label_name:
            selected.append(
                f"  {_label_expression(use_input, field, column)} AS {quote_ident(field.label_name)}"
            )
    sql = "SELECT\n" + ",\n".join(selected) + f"\nFROM {quote_ident(use_input.formview)}"
    return sql, missing


def _label_expression(use_input: UseInput, field: Field, column: Column | None) -> str:
    """The chosen code's words (the form's and field's names are bound as literals), else the code."""
    if column is None:
        return "CAST(NULL AS text)"
    code = f"CAST({quote_ident(use_input.formview)}.{quote_ident(column.name)} AS text)"
    words = (
        f"SELECT c.label FROM {CHOICE_LABELS} AS c WHERE c.form = {quote_literal(use_input.form)} "
        f"AND c.field = {quote_literal('/'.join(field.path))} AND c.value = {code}"
    )
    return f"coalesce(({words}), {code})"


def empty_select(use_input: UseInput) -> str:
    """An optional input whose form is absent: its columns, typed, and no rows."""
    typed = [*COMMON_TYPES.items()]
    for field in use_input.fields:
        typed += [(field.name, field.sql_type), *([(field.label_name, "text")] if field.label_name else [])]
    return (
        "SELECT\n"
        + ",\n".join(f"  CAST(NULL AS {t}) AS {quote_ident(n)}" for n, t in typed)
        + "\nWHERE false"
    )


def input_notes(use_input: UseInput, missing: Sequence[str], *, form_absent: bool = False) -> str:
    """What the deployment lacks of the input ('' when nothing)."""
    if form_absent:
        return f"Form {use_input.form!r} of input {use_input.name!r} is not in this deployment (optional): no rows."
    if missing:
        return f"Fields of input {use_input.name!r} not found in form {use_input.form!r} (NULL): {', '.join(missing)}."
    return ""


def input_description(use_input: UseInput, notes: str) -> str:
    text = f"Input {use_input.name!r} of form {use_input.form!r} as mapped in {use_input.source.name}."
    return f"{text} {notes}" if notes else text


def input_descriptions(use_input: UseInput, columns: Sequence[Column] = ()) -> dict[str, str]:
    """A description of every column of the input's view: the common report columns as the
    formview describes them, and for each field which form field feeds it (`columns`: the
    formview's columns now; a field not among them is NULL)."""
    by_path = {column.json_path: column for column in columns}
    descriptions = common_column_descriptions()
    for field in use_input.fields:
        path = "/".join(field.path)
        column = by_path.get(("fields", *field.path))
        source = (
            f"from column {column.name} of {use_input.formview}"
            if column is not None
            else f"NULL: form {use_input.form!r} has no such field here"
        )
        descriptions[field.name] = (
            f"{field.name.replace('_', ' ').capitalize()}: field {path} of form {use_input.form!r} "
            f"({field.sql_type}; {source}), as mapped in {use_input.source.name}."
        )
        if field.label_name:
            descriptions[field.label_name] = (
                f"The words of {field.name}'s choice (useview_choice_label: the form's label in the "
                "dashboards' language, else English), else its code"
                + ("." if column is not None else f"; NULL: form {use_input.form!r} has no such field here.")
            )
    return descriptions
