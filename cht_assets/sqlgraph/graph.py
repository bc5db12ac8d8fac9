"""The dependency graph: resolve each reference to an object or an external relation, order
the objects, derive output columns in that order."""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import replace
from pathlib import Path

from sqlglot import exp

from cht_assets.sqlgraph.columns import make_schema, output_columns
from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.sqlgraph.files import read_sql_dir
from cht_assets.sqlgraph.model import SqlObject
from cht_assets.sqlgraph.parse import RelationRef
from cht_assets.sqlgraph.sources import Source, extra_source, file_source, find_line

ExternalRelations = Mapping[str, Sequence[str]] | Set[str]
# Always there, never assets: references to them are not dependencies.
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})


def relation_key(name: str, is_object: bool, default_schema: str) -> tuple[str, str] | None:
    """(schema, table) of an object or external relation as the graph's parsed queries name
    it once qualified; None for three-part names."""
    if is_object:
        return (default_schema, name)
    parts = name.split(".")
    if len(parts) == 1:
        return (default_schema, name)
    return (parts[0], parts[1]) if len(parts) == 2 else None


class SqlGraph:
    """Objects by name, with their resolved dependencies; see `load_sql_dir`."""

    def __init__(
        self,
        objects: Mapping[str, SqlObject],
        external_relations: Mapping[str, Sequence[str]],
        *,
        default_schema: str,
        order: Sequence[str],
        trees: Mapping[str, exp.Query],
    ) -> None:
        self.objects: dict[str, SqlObject] = dict(objects)
        self.external_relations: dict[str, tuple[str, ...]] = {
            name: tuple(columns) for name, columns in external_relations.items()
        }
        self.default_schema = default_schema
        self._order = tuple(order)
        self._position = {name: index for index, name in enumerate(self._order)}
        self._trees = dict(trees)
        self._dependents: dict[str, list[str]] = {}
        for name in self._order:
            for dep in self.objects[name].depends_on:
                self._dependents.setdefault(dep, []).append(name)

    def __repr__(self) -> str:
        return f"SqlGraph({len(self.objects)} objects, {len(self.external_relations)} external relations)"

    def _check(self, name: str) -> None:
        if name not in self.objects and name not in self.external_relations:
            raise KeyError(name)

    def order(self) -> list[str]:
        """Every object after its dependencies; ties broken by layer, then name."""
        return list(self._order)

    def upstream(self, name: str, *, recursive: bool = False) -> tuple[str, ...]:
        """What `name` reads or calls: object names and external relation names. Recursive:
        objects in build order, then the external relations, sorted."""
        self._check(name)
        if name not in self.objects:
            return ()
        if not recursive:
            return self.objects[name].depends_on
        seen: set[str] = set()
        stack = list(self.objects[name].depends_on)
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(self.objects[dep].depends_on if dep in self.objects else ())
        return self._sorted(seen)

    def downstream(self, name: str, *, recursive: bool = True) -> tuple[str, ...]:
        """Objects that read or call `name` (an object or an external relation), in build order."""
        self._check(name)
        if not recursive:
            return tuple(self._dependents.get(name, ()))
        seen: set[str] = set()
        stack = list(self._dependents.get(name, ()))
        while stack:
            dependent = stack.pop()
            if dependent not in seen:
                seen.add(dependent)
                stack.extend(self._dependents.get(dependent, ()))
        return self._sorted(seen)

    def _sorted(self, names: Iterable[str]) -> tuple[str, ...]:
        objects = sorted((n for n in names if n in self.objects), key=self._position.__getitem__)
        return (*objects, *sorted(n for n in names if n not in self.objects))

    # --- what lineage needs ----------------------------------------------------------------

    def relation_key(self, name: str) -> tuple[str, str] | None:
        """(schema, table) of an object or external relation in `query_tree`s; None for
        functions and three-part names."""
        if name in self.objects and self.objects[name].is_function:
            return None
        return relation_key(name, name in self.objects, self.default_schema)

    def relation_columns(self, name: str) -> tuple[str, ...]:
        if name in self.objects:
            return self.objects[name].columns
        return self.external_relations.get(name, ())

    def query_tree(self, name: str) -> exp.Query | None:
        """A copy of the object's parsed SELECT, every relation schema-qualified; None for
        functions and objects given without SQL."""
        tree = self._trees.get(name)
        return tree.copy() if tree is not None else None


def _external_map(external_relations: ExternalRelations, default_schema: str) -> dict[str, tuple[str, ...]]:
    items = (
        external_relations.items()
        if isinstance(external_relations, Mapping)
        else ((name, ()) for name in external_relations)
    )
    prefix = f"{default_schema}."
    # `public.couchdb` and `couchdb` are the same relation: keep the short spelling.
    return {name.removeprefix(prefix): tuple(columns) for name, columns in sorted(items)}


def _resolve(
    ref: RelationRef,
    source: Source,
    sources: Mapping[str, Source],
    externals: Mapping[str, tuple[str, ...]],
    default_schema: str,
) -> str | None:
    """The object or external relation `ref` names; None for a system catalog."""
    parts = ref.parts
    if len(parts) >= 2 and parts[-2] in SYSTEM_SCHEMAS:
        return None
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == default_schema):
        name = parts[-1]
        if name in sources and not sources[name].obj.is_function:
            return name
        if name in externals:
            return name
    elif ref.dotted in externals:
        return ref.dotted
    candidates = [n for n, s in sources.items() if not s.obj.is_function] + list(externals)
    close = difflib.get_close_matches(ref.dotted, candidates, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    line = ref.line or find_line(source.text, parts[-1], source.line_offset)
    raise SqlGraphError(
        source.obj.path,
        line,
        f"unknown relation {ref.dotted!r}: neither a SQL object nor an external relation{hint}",
    )


def _dependencies(
    source: Source,
    sources: Mapping[str, Source],
    externals: Mapping[str, tuple[str, ...]],
    default_schema: str,
) -> tuple[str, ...]:
    obj = source.obj
    deps: dict[str, int] = {}
    for ref in source.refs.relations:
        name = _resolve(ref, source, sources, externals, default_schema)
        if name is None:
            continue
        key = relation_key(name, name in sources, default_schema)
        if ref.node is not None and key is not None:
            # Qualify the node in our private tree: one naming scheme for columns and lineage.
            ref.node.set("db", exp.to_identifier(key[0], quoted=True))
            ref.node.set("catalog", None)
        # An incremental model reads its own table to find where it left off: not a dependency.
        if name == obj.name and obj.kind == "incremental":
            continue
        deps.setdefault(name, ref.line or find_line(source.text, ref.parts[-1], source.line_offset))
    for call in source.refs.functions:
        if call.schema not in (None, default_schema):
            continue
        for name in call.names:
            if name in sources and sources[name].obj.is_function and name != obj.name:
                deps.setdefault(name, find_line(source.text, name, source.line_offset))
    for name in obj.depends_on:  # given with an extra object: must exist too
        if name not in sources and name not in externals:
            raise SqlGraphError(obj.path, None, f"depends_on names unknown relation {name!r}")
        deps.setdefault(name, 1)
    source.dep_lines = deps
    return tuple(sorted(deps))


def _topological_order(sources: Mapping[str, Source]) -> list[str]:
    """Kahn's algorithm on a heap keyed by (layer, name): the same files always give the same
    order, whatever the file system's listing order."""
    waiting = {name: {d for d in s.obj.depends_on if d in sources} for name, s in sources.items()}
    dependents: dict[str, list[str]] = {}
    for name, deps in waiting.items():
        for dep in deps:
            dependents.setdefault(dep, []).append(name)
    ready = [(s.obj.layer, name) for name, s in sources.items() if not waiting[name]]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for dependent in dependents.get(name, ()):
            waiting[dependent].discard(name)
            if not waiting[dependent]:
                heapq.heappush(ready, (sources[dependent].obj.layer, dependent))
    if len(order) < len(sources):
        _raise_cycle(sources, {name for name, deps in waiting.items() if deps})
    return order


def _raise_cycle(sources: Mapping[str, Source], stuck: set[str]) -> None:
    # Every stuck object waits on another stuck one: walking "first stuck dependency" from
    # the smallest name must come back on itself.
    path: list[str] = []
    node = min(stuck, key=lambda n: (sources[n].obj.layer, n))
    while node not in path:
        path.append(node)
        node = min(
            (d for d in sources[node].obj.depends_on if d in stuck), key=lambda n: (sources[n].obj.layer, n)
        )
    cycle = path[path.index(node) :]
    steps = []
    for current, following in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
        source = sources[current]
        steps.append(f"{source.obj.path}:{source.dep_lines.get(following, 1)}: {current} reads {following}")
    first = sources[cycle[0]]
    raise SqlGraphError(
        first.obj.path,
        first.dep_lines.get(cycle[(1 % len(cycle))], 1),
        "dependency cycle " + " -> ".join([*cycle, cycle[0]]) + "\n  " + "\n  ".join(steps),
    )


def _check_columns(source: Source) -> None:
    """Header column lists must name output columns, and PostgreSQL refuses a view or table
    with two columns of one name: say so now, with the line, rather than at CREATE time."""
    obj = source.obj
    if not obj.columns:
        return
    seen: set[str] = set()
    for column in obj.columns:
        if column in seen:
            line = find_line(source.text, column, source.line_offset)
            raise SqlGraphError(obj.path, line, f"output column {column!r} appears more than once")
        seen.add(column)
    keyed = [
        ("unique_key", obj.unique_key),
        *(("indexes", cols) for cols in obj.indexes),
        ("gin_indexes", obj.gin_indexes),
    ]
    for key, columns in keyed:
        missing = [c for c in columns if c not in seen]
        if missing:
            raise SqlGraphError(
                obj.path,
                source.key_lines.get(key, 1),
                f"{key} names {', '.join(map(repr, missing))}, not among the output columns {list(obj.columns)}",
            )


def load_sql_dir(
    root: Path,
    *,
    external_relations: ExternalRelations,
    extra_objects: Sequence[SqlObject] = (),
    default_schema: str = "public",
) -> SqlGraph:
    """Read every `*.sql` below `root` (one object per file, named after it, in the layer of its
    top folder), add `extra_objects`, resolve every reference and order the result.

    `external_relations` are the relations that exist outside the folder (`raw.couchdb_docs`,
    `couchdb`, ...), optionally with their columns so that `SELECT *` and lineage can see
    through them. Objects live in `default_schema`: `x` and `public.x` are the same.
    Raises `SqlGraphError` (with file and line) on parse errors, unknown relations, duplicate
    names and cycles.
    """
    externals = _external_map(external_relations, default_schema)
    sources: dict[str, Source] = {}
    for source in [*map(file_source, read_sql_dir(root)), *map(extra_source, extra_objects)]:
        name = source.obj.name
        if name in sources:
            raise SqlGraphError(
                source.obj.path, 1, f"object name {name!r} already used by {sources[name].obj.path}"
            )
        if name in externals:
            raise SqlGraphError(source.obj.path, 1, f"object name {name!r} is an external relation's")
        sources[name] = source

    for source in sources.values():
        source.obj = replace(source.obj, depends_on=_dependencies(source, sources, externals, default_schema))
    order = _topological_order(sources)

    graph_objects: dict[str, SqlObject] = {}
    for name in order:  # upstream columns are known before a `SELECT *` needs them
        source = sources[name]
        if source.tree is not None and not source.obj.columns:
            known = {
                key: graph_objects[dep].columns if dep in graph_objects else externals[dep]
                for dep in source.obj.depends_on
                if (key := relation_key(dep, dep in sources, default_schema)) is not None
                and not (dep in sources and sources[dep].obj.is_function)
            }
            source.obj = replace(source.obj, columns=output_columns(source.tree, make_schema(known)))
        _check_columns(source)
        graph_objects[name] = source.obj
    trees = {name: s.tree for name, s in sources.items() if s.tree is not None}
    return SqlGraph(graph_objects, externals, default_schema=default_schema, order=order, trees=trees)
