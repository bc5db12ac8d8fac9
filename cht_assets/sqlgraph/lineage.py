"""Column lineage: which upstream columns each output column of a SELECT is computed from.

Best-effort metadata (for Dagster's column lineage): whatever sqlglot cannot resolve is left
out, and nothing here raises on a query sqlglot finds too hard.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage
from sqlglot.optimizer.scope import build_scope

from cht_assets.sqlgraph.columns import is_unnamed, make_schema, prepare
from cht_assets.sqlgraph.graph import SqlGraph
from cht_assets.sqlgraph.parse import DIALECT

ColumnLineage = dict[str, list[tuple[str, str]]]


def column_lineage(graph: SqlGraph, name: str) -> ColumnLineage:
    """For each output column of object `name`: the (relation, column) pairs it derives from,
    one step up (an object or an external relation such as `raw.couchdb_docs`). Columns whose
    sources sqlglot cannot tell are absent; functions and SQL-less objects give {}."""
    tree = graph.query_tree(name)
    if tree is None:
        return {}
    relation_of: dict[tuple[str, str], str] = {}
    known: dict[tuple[str, str], tuple[str, ...]] = {}
    for dep in graph.objects[name].depends_on:
        key = graph.relation_key(dep)
        if key is not None:
            relation_of[key] = dep
            known[key] = graph.relation_columns(dep)
    schema = make_schema(known)
    qualified = prepare(tree, schema)
    if qualified is None:
        return {}
    try:
        scope = build_scope(qualified)
    except SqlglotError:
        return {}
    if scope is None:
        return {}

    result: ColumnLineage = {}
    for select in qualified.selects:
        column = select.alias_or_name
        if not column or column == "*" or is_unnamed(column):
            continue
        try:
            # Quoted, so that lineage() does not case-fold a name PostgreSQL keeps as is;
            # the scope, so that it does not qualify the query again for every column.
            node = lineage(
                exp.column(column, quoted=True),
                qualified,
                schema,
                dialect=DIALECT,
                scope=scope,
                copy=False,
            )
        except SqlglotError:
            continue
        pairs: list[tuple[str, str]] = []
        for step in node.walk():
            table = step.expression
            if step.downstream or not isinstance(table, exp.Table):
                continue
            relation = relation_of.get((table.db, table.name))
            prefix = f"{table.alias_or_name}."
            if relation is None or not step.name.startswith(prefix):
                continue  # a table function or CTE leaf: no relation to point at
            pair = (relation, step.name[len(prefix) :])
            if pair not in pairs:
                pairs.append(pair)
        if pairs:
            result[column] = pairs
    return result
