"""Data-quality queries over the view-layer objects: each returns a count and a few examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from cht_assets.sqlnames import quote_ident
from cht_assets.warehouse.formviews import report_forms

EXAMPLES = 5


@dataclass(frozen=True)
class Finding:
    """`count` offending rows (0 = pass), with up to EXAMPLES of them."""

    count: int
    examples: list[str] = field(default_factory=list)
    details: dict[str, int] = field(default_factory=dict)


def columns_sql(columns: Sequence[str]) -> str:
    return ", ".join(quote_ident(column) for column in columns)


def key_text(columns: Sequence[str]) -> str:
    return " || '/' || ".join(f"coalesce({quote_ident(column)}::text, 'NULL')" for column in columns)


def scope(doc_key: str, ids: Sequence[str] | None) -> tuple[str, dict | None]:
    """A WHERE condition (and its parameters) limiting a check to the rows of some docs."""
    if ids is None:
        return "true", None
    return f"{quote_ident(doc_key)} = ANY(%(ids)s)", {"ids": list(ids)}


def duplicate_keys(
    conn: psycopg.Connection,
    relation: str,
    key: Sequence[str],
    doc_key: str = "",
    ids: Sequence[str] | None = None,
) -> Finding:
    where, params = scope(doc_key, ids)
    rows = conn.execute(
        f"SELECT {key_text(key)} FROM {quote_ident(relation)} WHERE {where} GROUP BY {columns_sql(key)} HAVING count(*) > 1",
        params,
    ).fetchall()
    return Finding(len(rows), [row[0] for row in rows[:EXAMPLES]])


def null_keys(
    conn: psycopg.Connection,
    relation: str,
    key: Sequence[str],
    doc_key: str = "",
    ids: Sequence[str] | None = None,
) -> Finding:
    where, params = scope(doc_key, ids)
    condition = " OR ".join(f"{quote_ident(column)} IS NULL" for column in key)
    count = conn.execute(
        f"SELECT count(*) FROM {quote_ident(relation)} WHERE ({where}) AND ({condition})", params
    ).fetchone()[0]
    return Finding(count)


def parity(
    conn: psycopg.Connection, relation: str, model_sql: str, doc_key: str, ids: Sequence[str] | None = None
) -> Finding:
    """Rows the object should hold (its SQL run afresh over the raw docs) against the rows it
    holds: catches anything incremental maintenance missed, deletes included. With `ids`, only
    the rows of those docs (what an incremental refresh touched), so the check costs what the
    refresh cost."""
    key, table = quote_ident(doc_key), quote_ident(relation)
    params: tuple = ()
    expected = f"SELECT m.{key} FROM ({model_sql}) AS m"
    actual = f"SELECT t.{key} FROM {table} AS t"
    if ids is not None:
        expected = f"SELECT m.{key} FROM ({model_sql.replace('%', '%%')}) AS m WHERE m.{key} = ANY(%(ids)s)"
        actual += f" WHERE t.{key} = ANY(%(ids)s)"
        params = {"ids": list(ids)}  # type: ignore[assignment]
    both = f"SELECT (SELECT count(*) FROM ({expected}) AS e), (SELECT count(*) FROM ({actual}) AS a)"
    counts = conn.execute(both, params or None).fetchone()
    missing = conn.execute(f"({expected} EXCEPT ALL {actual}) LIMIT {EXAMPLES}", params or None).fetchall()
    extra = conn.execute(f"({actual} EXCEPT ALL {expected}) LIMIT {EXAMPLES}", params or None).fetchall()
    examples = [f"missing {row[0]}" for row in missing] + [f"extra {row[0]}" for row in extra]
    return Finding(
        abs(counts[0] - counts[1]) or len(examples), examples, {"expected": counts[0], "actual": counts[1]}
    )


def dangling_references(
    conn: psycopg.Connection, relation: str, column: str, target: str, target_column: str
) -> Finding:
    col, tcol = quote_ident(column), quote_ident(target_column)
    sql = (
        f"SELECT r.{col} FROM {quote_ident(relation)} AS r WHERE r.{col} IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {quote_ident(target)} AS t WHERE t.{tcol} = r.{col})"
    )
    count = conn.execute(f"SELECT count(*) FROM ({sql}) AS x").fetchone()[0]
    examples = [row[0] for row in conn.execute(f"{sql} LIMIT {EXAMPLES}").fetchall()] if count else []
    return Finding(count, examples)


def cast_failures(
    conn: psycopg.Connection, failures_sql: str, by_ids_sql: str, ids: Sequence[str] | None = None
) -> Finding:
    """Rows of `xforms.formview.cast_failures_select`: per column, failures and examples. With
    `ids`, only in those docs (what an incremental refresh brought in)."""
    if not failures_sql or ids == ():
        return Finding(0)
    rows = (
        conn.execute(by_ids_sql, {"ids": list(ids)}).fetchall()
        if ids
        else conn.execute(failures_sql).fetchall()
    )
    details = {column: failures for column, _, failures, _ in rows if failures}
    examples = [
        f"{column}: {example}" for column, _, failures, sample in rows if failures for example in sample or []
    ]
    return Finding(sum(details.values()), examples[:EXAMPLES], details)


def unreadable_forms(conn: psycopg.Connection) -> Finding:
    problems = report_forms(conn)[1]
    return Finding(len(problems), [f"{problem.doc_id}: {problem.error}" for problem in problems[:EXAMPLES]])
