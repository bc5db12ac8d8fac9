"""Column descriptions of the view-layer objects, and keeping PostgreSQL's comments on them.

A hand-written object's descriptions live next to its SQL, in `sql/<layer>/<name>.columns.yaml`
(column -> description, one line each); generated objects describe their columns as they build
(formviews from their XForm, the hierarchy from its place types, use-view inputs from their
mapping). After each refresh `apply_comments` sets `COMMENT ON COLUMN` (and on the relation)
where PostgreSQL holds something else, reading every comment in one query first: an unchanged
refresh issues no DDL. What PostgreSQL then holds is what Dagster's column schema and Superset's
datasets show. Pure: no Dagster. Descriptions may come from documents (form labels): they are
always bound as literals, names always quoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.sqlgraph.model import SqlObject
from cht_assets.warehouse.refresh import RELATION_KEYWORDS, Buildable

COLUMNS_SUFFIX = ".columns.yaml"


def columns_file(obj: SqlObject) -> Path:
    """`sql/useviews/useview_x.sql` -> `sql/useviews/useview_x.columns.yaml` (which may not exist)."""
    return obj.path.with_name(obj.name + COLUMNS_SUFFIX)


def read_column_descriptions(obj: SqlObject) -> dict[str, str]:
    """The object's `.columns.yaml`, if it has one ({} otherwise). A file that is not a mapping
    of column names to text, or names a column the object does not have (when its columns are
    known), fails loading, naming the file."""
    path = columns_file(obj)
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SqlGraphError(path, None, f"not YAML ({exc})") from None
    if not isinstance(data, Mapping):
        raise SqlGraphError(path, None, "expected a mapping of column name to description")
    descriptions: dict[str, str] = {}
    for column, text in data.items():
        if not isinstance(column, str) or not isinstance(text, str) or not text.strip():
            raise SqlGraphError(path, None, f"column {column!r}: the description must be text")
        descriptions[column] = " ".join(text.split())
    unknown = sorted(set(descriptions) - set(obj.columns)) if obj.columns else []
    if unknown:
        raise SqlGraphError(path, None, f"{obj.name} has no column {', '.join(unknown)}")
    return descriptions


# --- PostgreSQL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnComment:
    name: str
    type: str
    comment: str | None


@dataclass(frozen=True)
class RelationComments:
    """What PostgreSQL holds for one relation: its kind ('r', 'v', 'm'), comment and columns."""

    kind: str
    comment: str | None
    columns: tuple[ColumnComment, ...]


READ_SQL = """
SELECT c.relkind, obj_description(c.oid, 'pg_class'), a.attname, format_type(a.atttypid, a.atttypmod),
       col_description(c.oid, a.attnum)
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.oid = to_regclass(%s)
ORDER BY a.attnum
"""


def read_comments(conn: psycopg.Connection, qualified: str) -> RelationComments | None:
    """Every column of the relation (schema-qualified, quoted name) with its type and comment;
    None when it does not exist."""
    rows = conn.execute(READ_SQL, (qualified,)).fetchall()
    if not rows:
        return None
    columns = tuple(ColumnComment(name, type_name, comment) for _, _, name, type_name, comment in rows)
    return RelationComments(rows[0][0], rows[0][1], columns)


def _text(description: str) -> str:
    return " ".join(description.replace("\x00", "").split())


def comment_statements(built: Buildable, held: RelationComments) -> list[sql.Composed]:
    """The COMMENT statements that make PostgreSQL hold the object's descriptions: one per
    column whose comment differs (columns without a description keep theirs), and one for the
    relation. None when all agree."""
    relation = sql.SQL(built.qualified)
    statements = []
    keyword = RELATION_KEYWORDS.get(held.kind)
    description = _text(built.description)
    if keyword and description and held.comment != description:
        statements.append(
            sql.SQL("COMMENT ON {} {} IS {}").format(sql.SQL(keyword), relation, sql.Literal(description))
        )
    for column in held.columns:
        wanted = _text(built.column_descriptions.get(column.name, ""))
        if wanted and column.comment != wanted:
            statements.append(
                sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                    relation, sql.Identifier(column.name), sql.Literal(wanted)
                )
            )
    return statements


def after_comments(built: Buildable, held: RelationComments) -> RelationComments:
    """What PostgreSQL holds once `comment_statements` ran."""
    columns = tuple(
        ColumnComment(c.name, c.type, _text(built.column_descriptions.get(c.name, "")) or c.comment)
        for c in held.columns
    )
    return RelationComments(held.kind, _text(built.description) or held.comment, columns)


def apply_comments(conn: psycopg.Connection, built: Buildable) -> tuple[RelationComments | None, int]:
    """Set the comments that differ, in one transaction; returns what PostgreSQL now holds
    (None for a function or an absent relation) and how many statements ran."""
    if built.kind == "function":
        return None, 0
    held = read_comments(conn, built.qualified)
    if held is None:
        return None, 0
    statements = comment_statements(built, held)
    if statements:
        with conn.transaction():
            for statement in statements:
                conn.execute(statement)
    return after_comments(built, held), len(statements)
