"""Column lineage: which upstream columns each output column of a SELECT is computed from.

Best-effort metadata (for Dagster's column lineage): whatever sqlglot cannot resolve is left
out, and nothing here raises on a query sqlglot finds too hard.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage
from sqlglot.optimizer.scope import build_scope

from cht_assets.sqlgraph.columns import is_unnamed, make_schema, prepare
from cht_assets.sqlgraph.graph import SqlGraph
from cht_assets.sqlgraph.parse import DIALECT

ColumnLineage = dict[str, list[tuple[str, str]]]
DocFields = dict[str, list[str]]
# sqlglot's names for PostgreSQL's -> / ->> and #> / #>>.
_JSON_EXTRACTS = (exp.JSONExtract, exp.JSONExtractScalar, exp.JSONBExtract, exp.JSONBExtractScalar)


def column_lineage(graph: SqlGraph, name: str) -> ColumnLineage:
    """For each output column of object `name`: the (relation, column) pairs it derives from,
    one step up (an object or an external relation such as `raw.couchdb_docs`). Columns whose
    sources sqlglot cannot tell are absent; functions and SQL-less objects give {}."""
    return _trace(graph, name)[0]


def doc_fields(graph: SqlGraph, name: str) -> DocFields:
    """For each output column of object `name` that reads a document's JSON (`doc ->> 'sex'`,
    `doc #>> '{fields,edd}'`, through CTEs and subqueries too): the document field paths it reads,
    dotted (`sex`, `fields.edd`, `contact._id`). Best effort, like `column_lineage`."""
    return _trace(graph, name)[1]


def column_sources(graph: SqlGraph, names: Iterable[str]) -> dict[tuple[str, str], list[str]]:
    """(object, column) -> where its value comes from, for the data dictionary, for the objects
    `names`: the document fields it reads (`doc.sex`), then the upstream columns
    (`contactview_metadata.name`), the raw `doc` column left out where its fields are known."""
    found: dict[tuple[str, str], list[str]] = {}
    for name in names:
        lineage, fields = _trace(graph, name)
        for column in lineage.keys() | fields.keys():
            paths = [f"doc.{path}" for path in fields.get(column, ())]
            upstream = [
                f"{relation}.{source}"
                for relation, source in lineage.get(column, ())
                if not (paths and source == "doc")
            ]
            found[(name, column)] = paths + upstream
    return found


def _trace(graph: SqlGraph, name: str) -> tuple[ColumnLineage, DocFields]:
    tree = graph.query_tree(name)
    if tree is None:
        return {}, {}
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
        return {}, {}
    try:
        scope = build_scope(qualified)
    except SqlglotError:
        return {}, {}
    if scope is None:
        return {}, {}

    result: ColumnLineage = {}
    fields: DocFields = {}
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
        paths: list[str] = []
        for step in node.walk():
            table = step.expression
            paths.extend(path for path in _json_paths(table) if path not in paths)
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
        if paths:
            fields[column] = paths
    return result, fields


def _json_paths(expression: exp.Expr) -> list[str]:
    """The paths of the outermost JSON extractions from a column named `doc` in `expression`."""
    if isinstance(expression, exp.Table):
        return []
    found = []
    for node in expression.find_all(*_JSON_EXTRACTS):
        if isinstance(_unparen_parent(node), _JSON_EXTRACTS):
            continue  # part of a longer chain, counted from its outermost extraction
        keys = _extraction_keys(node)
        if keys:
            found.append(".".join(keys))
    return found


def _unparen_parent(node: exp.Expr) -> exp.Expr | None:
    parent = node.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    return parent


def _extraction_keys(node: exp.Expr) -> list[str] | None:
    """`doc -> 'a' ->> 'b'` gives ['a', 'b']; None when the chain does not start at `doc` or a
    key is not a constant."""
    inner = node.this
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, _JSON_EXTRACTS):
        prefix = _extraction_keys(inner)
    elif isinstance(inner, exp.Column) and inner.name == "doc":
        prefix = []
    else:
        return None
    keys = _path_keys(node.expression)
    return None if prefix is None or keys is None else prefix + keys


def _path_keys(path: exp.Expr) -> list[str] | None:
    if isinstance(path, exp.JSONPath):
        keys = [part.this for part in path.expressions if not isinstance(part, exp.JSONPathRoot)]
        return [str(key) for key in keys] if all(isinstance(k, str | int) for k in keys) else None
    if isinstance(path, exp.Literal) and path.is_string:
        # `#>` / `#>>` take a text array literal: '{fields,edd}'
        return [key.strip().strip('"') for key in path.this.strip("{}").split(",") if key.strip()]
    return None
