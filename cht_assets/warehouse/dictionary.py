"""The data dictionary in PostgreSQL: `public.form_fields` and `public.form_choices`.

Both are replaced whole in one transaction: readers keep seeing the previous contents until it
commits (DELETE, not TRUNCATE, which would make them wait), never an empty table. The previous
contents are read in the same transaction, so a field a newer form version dropped keeps its
entry, marked `collected = false` with the last version that had it.

Form ids, field names, labels and choices come from documents: they are always bound values,
never SQL text.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

import psycopg

from cht_assets.dictionary.messages import parse_messages_docs
from cht_assets.dictionary.render import DataDictionary, render_html, render_markdown
from cht_assets.dictionary.rows import (
    ChoiceRow,
    FieldRow,
    RelationColumn,
    choice_rows,
    field_rows,
    merge_retired,
)
from cht_assets.replica.forms import stored_forms
from cht_assets.sqlnames import UnsafeName, quote_ident, quote_qualified
from cht_assets.warehouse.formviews import NOT_REPORT_FORMS, all_known_columns
from cht_assets.xforms.dictionary import FormDictionary, form_dictionary
from cht_assets.xforms.parse import XFormError

__all__ = [
    "CHOICES_TABLE",
    "FIELDS_TABLE",
    "DictionaryPage",
    "DictionaryTables",
    "FormTablesRun",
    "RelationColumn",
    "deployment_dictionaries",
    "refresh_form_tables",
    "deployment_locale",
    "messages_docs",
    "read_dictionary",
    "relation_columns",
    "write_dictionary",
    "write_dictionary_page",
]

SCHEMA = "public"
FIELDS_TABLE = "form_fields"
CHOICES_TABLE = "form_choices"
HTML_FILE, MARKDOWN_FILE = "data_dictionary.html", "data_dictionary.md"
FIELD_COLUMNS = tuple(f.name for f in fields(FieldRow))
CHOICE_COLUMNS = tuple(f.name for f in fields(ChoiceRow))
DDL = f"""
CREATE TABLE IF NOT EXISTS {quote_qualified(SCHEMA, FIELDS_TABLE)} (
    form          text    NOT NULL,
    field         text    NOT NULL,
    view_name     text,
    column_name   text,
    lang          text    NOT NULL,
    label         text,
    hint          text,
    type          text    NOT NULL,
    required      text,
    relevant      text,
    "constraint"  text,
    calculate     text,
    form_version  text    NOT NULL,
    collected     boolean NOT NULL,
    last_version  text    NOT NULL
);
CREATE INDEX IF NOT EXISTS form_fields_form_field ON {quote_qualified(SCHEMA, FIELDS_TABLE)} (form, field);
CREATE TABLE IF NOT EXISTS {quote_qualified(SCHEMA, CHOICES_TABLE)} (
    form      text    NOT NULL,
    field     text    NOT NULL,
    value     text    NOT NULL,
    label     text,
    lang      text    NOT NULL,
    position  integer NOT NULL
);
CREATE INDEX IF NOT EXISTS form_choices_form_field ON {quote_qualified(SCHEMA, CHOICES_TABLE)} (form, field, value);
COMMENT ON TABLE {quote_qualified(SCHEMA, FIELDS_TABLE)} IS
    'Data dictionary: one row per form field, formview column and language, from the XForms.';
COMMENT ON TABLE {quote_qualified(SCHEMA, CHOICES_TABLE)} IS
    'Data dictionary: the choices of every select question with their label per language.';
"""
# Schemas whose relations are the pipeline's own plumbing, not something to document.
_INTERNAL_SCHEMAS = ("raw", "cht_meta", "pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True)
class DictionaryTables:
    """What the tables hold after a write."""

    fields: list[FieldRow]
    choices: list[ChoiceRow]
    changed: bool = False  # whether the write changed the tables' contents

    @property
    def retired(self) -> list[FieldRow]:
        return [row for row in self.fields if not row.collected]


def write_dictionary(conn: psycopg.Connection, forms: Sequence[FormDictionary]) -> DictionaryTables:
    """Replace both tables' contents with the dictionary of `forms` plus the retired entries,
    in one transaction."""
    with conn.transaction():
        conn.execute(DDL)
        # One writer at a time (readers are not blocked): two runs must not both read the
        # old contents and each drop the other's retired entries.
        conn.execute(
            f"LOCK TABLE {quote_qualified(SCHEMA, FIELDS_TABLE)}, {quote_qualified(SCHEMA, CHOICES_TABLE)} "
            "IN SHARE ROW EXCLUSIVE MODE"
        )
        previous = read_dictionary(conn)
        versions = {form.form_id: form.version for form in forms}
        merged_fields, merged_choices = merge_retired(
            field_rows(forms), choice_rows(forms), previous.fields, previous.choices, versions
        )
        # The asset follows every sync of `medic`: most runs find the forms unchanged, and
        # leave the tables (and their dead tuples) alone.
        changed = _as_set(merged_fields) != _as_set(previous.fields) or _as_set(merged_choices) != _as_set(
            previous.choices
        )
        if changed:
            _replace(conn, FIELDS_TABLE, FIELD_COLUMNS, [astuple(row) for row in merged_fields])
            _replace(conn, CHOICES_TABLE, CHOICE_COLUMNS, [astuple(row) for row in merged_choices])
    return DictionaryTables(merged_fields, merged_choices, changed)


def read_dictionary(conn: psycopg.Connection) -> DictionaryTables:
    """Both tables' rows (empty before the first write)."""
    if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{FIELDS_TABLE}",)).fetchone()[0] is None:
        return DictionaryTables([], [])
    field_list = ", ".join(quote_ident(c) for c in FIELD_COLUMNS)
    choice_list = ", ".join(quote_ident(c) for c in CHOICE_COLUMNS)
    field_rows_ = conn.execute(
        f"SELECT {field_list} FROM {quote_qualified(SCHEMA, FIELDS_TABLE)} ORDER BY form, field, column_name, lang"
    ).fetchall()
    choice_rows_ = conn.execute(
        f"SELECT {choice_list} FROM {quote_qualified(SCHEMA, CHOICES_TABLE)} ORDER BY form, field, position, lang"
    ).fetchall()
    return DictionaryTables(
        [FieldRow(*row) for row in field_rows_], [ChoiceRow(*row) for row in choice_rows_]
    )


def _as_set(rows: Sequence[FieldRow] | Sequence[ChoiceRow]) -> Counter[tuple[Any, ...]]:
    return Counter(astuple(row) for row in rows)


def _replace(
    conn: psycopg.Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    target = quote_qualified(SCHEMA, table)
    conn.execute(f"DELETE FROM {target}")
    with conn.cursor().copy(
        f"COPY {target} ({', '.join(quote_ident(c) for c in columns)}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)


def messages_docs(conn: psycopg.Connection, source: str = "medic") -> list[dict[str, Any]]:
    """The live `messages-<lang>` translation docs of `source` in the raw replica (none before
    its first sync)."""
    if conn.execute("SELECT to_regclass('raw.couchdb_docs')").fetchone()[0] is None:
        return []
    rows = conn.execute(
        "SELECT doc FROM raw.couchdb_docs WHERE source = %s AND _id LIKE 'messages-%%' AND NOT _deleted "
        "ORDER BY _id",
        (source,),
    ).fetchall()
    return [_as_dict(row[0]) for row in rows]


def deployment_locale(conn: psycopg.Connection, source: str = "medic") -> str | None:
    """The deployment's `locale` from its `settings` doc (CHT nests it under `settings`)."""
    if conn.execute("SELECT to_regclass('raw.couchdb_docs')").fetchone()[0] is None:
        return None
    row = conn.execute(
        "SELECT COALESCE(doc #>> '{settings,locale}', doc ->> 'locale') FROM raw.couchdb_docs "
        "WHERE source = %s AND _id = 'settings' AND NOT _deleted",
        (source,),
    ).fetchone()
    return row[0] if row and row[0] else None


def relation_columns(conn: psycopg.Connection) -> list[RelationColumn]:
    """Every column of every view, table and materialized view outside the pipeline's internal
    schemas, with its type and `COMMENT ON COLUMN`, in schema, relation and column order."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname,
               CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END,
               a.attname, format_type(a.atttypid, a.atttypmod), col_description(c.oid, a.attnum)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind IN ('v', 'm', 'r', 'p')
          AND NOT c.relispartition
          AND n.nspname <> ALL (%s)
          AND n.nspname NOT LIKE 'pg\\_%%'
        ORDER BY n.nspname, c.relname, a.attnum
        """,
        (list(_INTERNAL_SCHEMAS),),
    ).fetchall()
    return [RelationColumn(*row) for row in rows]


def _as_dict(doc: Any) -> dict[str, Any]:
    return json.loads(doc) if isinstance(doc, str) else dict(doc)


# ------------------------------------------------------------------------- the whole refresh


@dataclass(frozen=True)
class FormTablesRun:
    """What one refresh of the tables wrote, the forms described and those that could not be
    read (doc id -> why)."""

    tables: DictionaryTables
    forms: list[FormDictionary]
    problems: dict[str, str]


@dataclass(frozen=True)
class DictionaryPage:
    """The two files one page refresh wrote and what they list."""

    html_path: Path
    markdown_path: Path
    forms: int
    languages: tuple[str, ...]
    translation_languages: tuple[str, ...]
    relations: int


def deployment_dictionaries(conn: psycopg.Connection) -> tuple[list[FormDictionary], dict[str, str]]:
    """The dictionary of every synced form (one per form id, the first doc wins, as for the
    formviews), with the formview column names seen so far; and the forms that cannot be read."""
    known = all_known_columns(conn)
    dictionaries: dict[str, FormDictionary] = {}
    problems: dict[str, str] = {}
    for form in stored_forms(conn):
        try:
            dictionary = form_dictionary(
                form.xml, known, formview=not form.doc_id.startswith(NOT_REPORT_FORMS)
            )
        except (XFormError, UnsafeName, ValueError) as exc:
            problems[form.doc_id] = str(exc)[:300]
            continue
        dictionaries.setdefault(dictionary.form_id, dictionary)
    return list(dictionaries.values()), problems


def refresh_form_tables(conn: psycopg.Connection) -> FormTablesRun:
    """Describe the deployment's forms in `form_fields`/`form_choices` (no forms yet: empty
    tables, not an error)."""
    forms, problems = deployment_dictionaries(conn)
    return FormTablesRun(write_dictionary(conn, forms), forms, problems)


def write_dictionary_page(
    conn: psycopg.Connection,
    directory: Path,
    *,
    generated_at: str,
    source: str = "medic",
    sources: Mapping[tuple[str, str], Sequence[str]] | None = None,
) -> DictionaryPage:
    """Write `data_dictionary.html`/`.md` into `directory`: the forms, the fields no longer
    collected (from `form_fields`), the translation docs and every view column of the warehouse
    with its lineage from `sources` ((view, column) -> what it reads). No forms or no
    translation docs yet is a state the page reports, not an error."""
    forms, problems = deployment_dictionaries(conn)
    translations = parse_messages_docs(messages_docs(conn, source), deployment_locale(conn, source))
    relations = relation_columns(conn)
    document = DataDictionary(
        forms=forms,
        translations=translations,
        retired=read_dictionary(conn).retired,
        relations=relations,
        problems=problems,
        generated_at=generated_at,
        language=translations.default_language,
        sources=sources or {},
    )
    directory.mkdir(parents=True, exist_ok=True)
    return DictionaryPage(
        html_path=_write_atomically(directory / HTML_FILE, render_html(document)),
        markdown_path=_write_atomically(directory / MARKDOWN_FILE, render_markdown(document)),
        forms=len(forms),
        languages=document.languages,
        translation_languages=translations.languages,
        relations=len({(c.schema, c.relation) for c in relations}),
    )


def _write_atomically(path: Path, text: str) -> Path:
    """A reader (a browser, a web server) sees the old file or the new one, never half of it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path
