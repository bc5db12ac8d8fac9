"""Output column names of a SELECT, named the way PostgreSQL names them, with `*` expanded
from the known columns of the relations it reads (sqlglot's qualify does the expansion)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from cht_assets.sqlgraph.parse import DIALECT

# (schema, table) -> columns, for the relations a query reads (after the graph qualified them)
RelationColumns = Mapping[tuple[str, str], Sequence[str]]


def make_schema(columns: RelationColumns) -> MappingSchema:
    nested: dict[str, Any] = {}  # schema -> table -> column -> type (unknown to us)
    for (schema, table), names in columns.items():
        if names:
            nested.setdefault(schema, {})[table] = dict.fromkeys(names, "unknown")
    # Names are already case-folded as PostgreSQL would; normalizing again would lower-case
    # the quoted ones.
    return MappingSchema(nested, dialect=DIALECT, normalize=False)


def _is_star(projection: exp.Expr) -> bool:
    return isinstance(projection, exp.Star) or (
        isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
    )


def postgres_name(projection: exp.Expr) -> str | None:
    """The name PostgreSQL gives an output column, where that is certain from the tree.

    sqlglot's `alias_or_name` differs (a literal `1` is named "1", PostgreSQL says "?column?")
    and typed functions lose their spelling (`now()` becomes CURRENT_TIMESTAMP), so anything
    but an alias, a column, a cast of those or a user-defined function call is "unknown".
    """
    if isinstance(projection, exp.Alias):
        return projection.alias
    if isinstance(projection, exp.Column) and not _is_star(projection):
        return projection.name
    if isinstance(projection, exp.Cast):
        return postgres_name(projection.this)
    if isinstance(projection, exp.Paren):
        return postgres_name(projection.this)
    if isinstance(projection, exp.Anonymous):
        this = projection.this
        return this.name if isinstance(this, exp.Identifier) else str(this).lower()
    return None


def _selects(query: exp.Expr) -> list[exp.Expr]:
    return list(query.selects) if isinstance(query, exp.Query) else []


# Placeholder name for a projection whose PostgreSQL name is not certain: PostgreSQL names
# cannot hold a NUL, so it cannot collide with a real column.
UNNAMED = "\x00unnamed"


def is_unnamed(name: str) -> bool:
    return name.startswith(UNNAMED)


def prepare(tree: exp.Query, schema: MappingSchema) -> exp.Query | None:
    """A qualified copy of `tree` (every column bound to its source, stars expanded where the
    sources' columns are known) whose top projections carry PostgreSQL's names, or an
    `is_unnamed` placeholder where that name is not certain; None when sqlglot cannot qualify
    the query."""
    query = tree.copy()
    outer = query
    while isinstance(outer, exp.SetOperation):  # UNION: the left-most SELECT names the columns
        outer = outer.this
    for index, projection in enumerate(list(_selects(outer))):
        if _is_star(projection) or isinstance(projection, exp.Alias):
            continue
        name = postgres_name(projection) or f"{UNNAMED}{index}"
        # An explicit alias, so that qualify does not invent `_col_0`-style names
        projection.replace(exp.alias_(projection.copy(), exp.to_identifier(name, quoted=True)))
    try:
        return qualify(
            query,
            schema=schema,
            dialect=DIALECT,
            validate_qualify_columns=False,
            identify=False,
        )
    except SqlglotError:
        return None


def output_columns(tree: exp.Query, schema: MappingSchema) -> tuple[str, ...]:
    """The SELECT's column names in order; () when a `*` cannot be expanded or a name is not
    certain."""
    projections = _selects(tree)
    if not any(_is_star(p) for p in projections):
        names = [postgres_name(p) for p in projections]
        return () if any(name is None for name in names) else tuple(names)  # type: ignore[arg-type]
    qualified = prepare(tree, schema)
    if qualified is None or any(_is_star(p) for p in _selects(qualified)):
        return ()
    expanded = [p.alias_or_name for p in _selects(qualified)]
    return () if any(map(is_unnamed, expanded)) else tuple(expanded)
