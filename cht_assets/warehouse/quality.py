"""Data-quality queries over the view-layer objects: each returns a count and a few examples."""

from __future__ import annotations

from collections.abc import Collection, Sequence
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
    keys: tuple[str, ...] | None = None  # a scoped check's: every failing row's key


def columns_sql(columns: Sequence[str]) -> str:
    return ", ".join(quote_ident(column) for column in columns)


def key_text(columns: Sequence[str]) -> str:
    return " || '/' || ".join(f"coalesce({quote_ident(column)}::text, 'NULL')" for column in columns)


def scope(doc_key: str, ids: Sequence[str] | None) -> tuple[str, dict | None]:
    """A WHERE condition (and its parameters) limiting a check to the rows of some docs."""
    if ids is None:
        return "true", None
    return f"{quote_ident(doc_key)} = ANY(%(ids)s)", {"ids": list(ids)}


def key_problems(
    conn: psycopg.Connection,
    relation: str,
    key: Sequence[str],
    doc_key: str = "",
    ids: Sequence[str] | None = None,
    nullable: Sequence[str] = (),
) -> Finding:
    """Rows whose key is repeated or NULL, in one pass: details say which (`duplicates`
    counts the repeated key values, `nulls` the rows with a NULL key column). A `nullable`
    key column may be NULL: NULLs then repeat like any value."""
    if ids == ():
        return Finding(0, [], {"duplicates": 0, "nulls": 0})
    where, params = scope(doc_key, ids)
    nulls = (
        " OR ".join(f"{quote_ident(column)} IS NULL" for column in key if column not in nullable) or "false"
    )
    # Equal docs hash equal: when no two rows share a key's hashes, no key repeats. A whole doc's
    # hash costs one read of it; grouping by the doc compares docs, each comparison decompressing
    # both (raw_contacts: 3.1 s at 1 000 000 docs). Only repeated hashes need the exact pass.
    hashed = jsonb_columns(conn, relation, key)
    found = repeated_keys(conn, relation, key, where, params, nulls, hashed) if hashed else None
    if found is None or found[0] > 0:
        found = repeated_keys(conn, relation, key, where, params, nulls)
    duplicates, null_rows, examples = found
    examples += ["NULL key"] if null_rows else []
    return Finding(duplicates + null_rows, examples, {"duplicates": duplicates, "nulls": null_rows})


def jsonb_columns(conn: psycopg.Connection, relation: str, columns: Sequence[str]) -> set[str]:
    found = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = ANY(%s) "
        "AND atttypid = 'jsonb'::regtype AND NOT attisdropped",
        (quote_ident(relation), list(columns)),
    )
    return {row[0] for row in found}


def repeated_keys(
    conn: psycopg.Connection,
    relation: str,
    key: Sequence[str],
    where: str,
    params: dict | None,
    nulls: str,
    hashed: Collection[str] = (),
) -> tuple[int, int, list[str]]:
    """Repeated keys, rows with a NULL key column and examples of the first, in one aggregate
    over the key (or over the hashes of its `hashed` columns): no copy of the rows, and a view's
    planner computes only the key columns."""
    grouped = ", ".join(
        f"jsonb_hash_extended({quote_ident(column)}, 0) AS {quote_ident(column)}"
        if column in hashed
        else quote_ident(column)
        for column in key
    )
    positions = ", ".join(str(position) for position in range(1, len(key) + 1))
    duplicates, null_rows, examples = conn.execute(
        f"""
        SELECT count(*) FILTER (WHERE n > 1 AND NOT ({nulls})),
            coalesce(sum(n) FILTER (WHERE {nulls}), 0)::bigint,
            coalesce((array_agg('repeated ' || {key_text(key)}) FILTER (WHERE n > 1 AND NOT ({nulls})))[:{EXAMPLES}], '{{}}')
        FROM (SELECT {grouped}, count(*) AS n FROM {quote_ident(relation)} WHERE {where} GROUP BY {positions}) AS g
        """,
        params,
    ).fetchone()
    return duplicates, null_rows, examples


def parity(
    conn: psycopg.Connection, relation: str, model_sql: str, doc_key: str, ids: Sequence[str] | None = None
) -> Finding:
    """Rows the object should hold (its SQL run afresh over the raw docs) against the rows it
    holds: catches anything incremental maintenance missed, deletes included. With `ids`, only
    the rows of those docs (what an incremental refresh touched), so the check costs what the
    refresh cost. One statement: the SQL runs once."""
    if ids == ():
        return Finding(0, [], {"expected": 0, "actual": 0})
    key, table = quote_ident(doc_key), quote_ident(relation)
    params = None
    expected = f"SELECT m.{key} AS k FROM ({model_sql}) AS m"
    actual = f"SELECT t.{key} AS k FROM {table} AS t"
    if ids is not None:
        expected = (
            f"SELECT m.{key} AS k FROM ({model_sql.replace('%', '%%')}) AS m WHERE m.{key} = ANY(%(ids)s)"
        )
        actual += f" WHERE t.{key} = ANY(%(ids)s)"
        params = {"ids": list(ids)}
    expected_count, actual_count, missing, extra = conn.execute(
        f"""
        WITH expected AS MATERIALIZED ({expected}), actual AS MATERIALIZED ({actual})
        SELECT (SELECT count(*) FROM expected), (SELECT count(*) FROM actual),
            ARRAY(SELECT k::text FROM (TABLE expected EXCEPT ALL TABLE actual) AS x LIMIT {EXAMPLES}),
            ARRAY(SELECT k::text FROM (TABLE actual EXCEPT ALL TABLE expected) AS x LIMIT {EXAMPLES})
        """,
        params,
    ).fetchone()
    examples = [f"missing {k}" for k in missing] + [f"extra {k}" for k in extra]
    return Finding(
        abs(expected_count - actual_count) or len(examples),
        examples,
        {"expected": expected_count, "actual": actual_count},
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


def zero_rows(
    conn: psycopg.Connection, sql: str, scope: str = "", among: Sequence[str] | None = None
) -> Finding:
    """A reconciliation query that must return no rows: the rows it returns (as JSON) are the
    failures. One statement: the query runs once. `scope`: a column keying the query's rows;
    the finding then holds every failing row's key, and with `among` only the rows whose key
    is one of those are looked at (PostgreSQL pushes the condition into the query's scan)."""
    params = None
    if scope and among is not None:
        sql = f"SELECT * FROM ({sql.replace('%', '%%')}) AS q WHERE q.{quote_ident(scope)} = ANY(%(keys)s)"
        params = {"keys": list(among)}
    keys = f"ARRAY(SELECT DISTINCT f.{quote_ident(scope)}::text FROM failing AS f)" if scope else "NULL"
    count, examples, failing = conn.execute(
        f"WITH failing AS MATERIALIZED ({sql}) "
        f"SELECT (SELECT count(*) FROM failing), ARRAY(SELECT to_jsonb(f)::text FROM failing AS f LIMIT {EXAMPLES}), "
        f"{keys}",
        params,
    ).fetchone()
    details = {} if params is None else {"scoped_to_keys": len(params["keys"])}
    return Finding(count, examples, details, None if failing is None else tuple(failing))
