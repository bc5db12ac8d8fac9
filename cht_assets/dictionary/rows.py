"""The dictionary as table rows: one per field, column and language (`form_fields`) and one per
choice and language (`form_choices`); and how a new run's rows merge with the last run's so a
field a newer form version dropped keeps its entry, marked as no longer collected."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from cht_assets.xforms.dictionary import FieldEntry, FormDictionary

__all__ = ["ChoiceRow", "FieldRow", "RelationColumn", "choice_rows", "field_rows", "merge_retired"]


@dataclass(frozen=True)
class FieldRow:
    """One row of `form_fields`. `form_version` is the version of the form the dictionary was
    built from; `last_version` the last version that had the field (the same while
    `collected`)."""

    form: str
    field: str
    view_name: str | None
    column_name: str | None
    lang: str
    label: str | None
    hint: str | None
    type: str
    required: str | None
    relevant: str | None
    constraint: str | None
    calculate: str | None
    form_version: str
    collected: bool
    last_version: str


@dataclass(frozen=True)
class ChoiceRow:
    """One row of `form_choices`; `position` keeps the form's order of the choices."""

    form: str
    field: str
    value: str
    label: str | None
    lang: str
    position: int


@dataclass(frozen=True)
class RelationColumn:
    """A column of a relation of the warehouse, as PostgreSQL describes it."""

    schema: str
    relation: str
    kind: str  # view, table, materialized view
    column: str
    data_type: str
    comment: str | None


def field_rows(forms: Iterable[FormDictionary]) -> list[FieldRow]:
    """Every field of every form, once per formview column (a field feeding none, once) and
    per language its label or hint is written in (an unlabelled field, once in the form's
    default language)."""
    rows = []
    for form in forms:
        for entry in form.fields:
            for column in entry.columns or (None,):
                for lang in _languages(form, entry):
                    rows.append(_field_row(form, entry, column, lang))
    return rows


def choice_rows(forms: Iterable[FormDictionary]) -> list[ChoiceRow]:
    rows = []
    for form in forms:
        for entry in form.fields:
            for position, choice in enumerate(entry.choices, start=1):
                for lang in choice.labels or {form.default_language: None}:
                    rows.append(
                        ChoiceRow(
                            form.form_id, entry.name, choice.value, choice.labels.get(lang), lang, position
                        )
                    )
    return rows


def merge_retired(
    fields: Sequence[FieldRow],
    choices: Sequence[ChoiceRow],
    previous_fields: Sequence[FieldRow],
    previous_choices: Sequence[ChoiceRow],
    form_versions: dict[str, str],
) -> tuple[list[FieldRow], list[ChoiceRow]]:
    """The new rows plus the previous rows of every (form, field) the new ones lack: marked not
    collected, with the last version that had them kept, and the version of the form now
    (`form_versions`, by form id) when the form is still there. Their choices stay too, so old
    reports' codes can still be read."""
    present = {(row.form, row.field) for row in fields}
    retired = [
        replace(
            row,
            collected=False,
            form_version=form_versions.get(row.form, row.form_version),
        )
        for row in previous_fields
        if (row.form, row.field) not in present
    ]
    retired_keys = {(row.form, row.field) for row in retired}
    kept_choices = [row for row in previous_choices if (row.form, row.field) in retired_keys]
    return [*fields, *retired], [*choices, *kept_choices]


def _languages(form: FormDictionary, entry: FieldEntry) -> list[str]:
    found = [lang for lang in form.languages if lang in entry.labels or lang in entry.hints]
    found += [lang for lang in (*entry.labels, *entry.hints) if lang not in found]
    return found or [form.default_language]


def _field_row(form: FormDictionary, entry: FieldEntry, column: str | None, lang: str) -> FieldRow:
    expressions = entry.expressions
    return FieldRow(
        form=form.form_id,
        field=entry.name,
        view_name=entry.view,
        column_name=column,
        lang=lang,
        label=entry.labels.get(lang),
        hint=entry.hints.get(lang),
        type=entry.raw_type or entry.bind_type,
        required=expressions.get("required"),
        relevant=expressions.get("relevant"),
        constraint=expressions.get("constraint"),
        calculate=expressions.get("calculate"),
        form_version=form.version,
        collected=True,
        last_version=form.version,
    )
