"""One object read for the graph: its SqlObject, parsed statement and references, before
anything is resolved."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from sqlglot import exp

from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.sqlgraph.files import SqlFile
from cht_assets.sqlgraph.model import FUNCTION, MATERIALIZATIONS, SqlObject, code_version
from cht_assets.sqlgraph.parse import (
    References,
    function_declarations,
    function_references,
    model_references,
    parse_model,
    starts_with_create_function,
)

FUNCTIONS_LAYER = "functions"


@dataclass
class Source:
    """One object while the graph is being built."""

    obj: SqlObject
    text: str  # what line numbers refer to: the file, or a generated object's SQL
    line_offset: int  # header lines above the statement
    key_lines: dict[str, int] = field(default_factory=dict)
    tree: exp.Query | None = None
    refs: References = field(default_factory=References)
    dep_lines: dict[str, int] = field(default_factory=dict)


def find_line(text: str, name: str, start: int) -> int:
    """First line after the header where `name` appears as a word; the statement's first line
    when it does not (then sqlglot had it from somewhere we cannot point at)."""
    pattern = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])", re.IGNORECASE)
    lines = text.splitlines()
    for number in range(start, len(lines)):
        if pattern.search(lines[number]):
            return number + 1
    return start + 1


def function_source(obj: SqlObject, text: str, line_offset: int, key_lines: dict[str, int]) -> Source:
    declarations = function_declarations(text)
    if declarations is not None:  # None: not even tokenizable, stays opaque
        if not declarations:
            raise SqlGraphError(obj.path, line_offset + 1, "expected CREATE [OR REPLACE] FUNCTION")
        for declared in declarations:
            if declared.name != obj.name:
                raise SqlGraphError(
                    obj.path,
                    declared.line,
                    f"declares function {declared.name!r}; the file name says {obj.name!r}",
                )
    return Source(obj, text, line_offset, key_lines, refs=function_references(text))


def model_source(obj: SqlObject, text: str, line_offset: int, key_lines: dict[str, int]) -> Source:
    if obj.kind not in MATERIALIZATIONS:
        raise SqlGraphError(
            obj.path,
            key_lines.get("materialized", 1),
            f"materialized must be one of {', '.join(MATERIALIZATIONS)}; got {obj.kind!r}",
        )
    tree = parse_model(obj.sql, obj.path, line_offset)
    return Source(obj, text, line_offset, key_lines, tree, model_references(tree, line_offset))


def file_source(file: SqlFile) -> Source:
    header = file.header
    is_function = file.layer == FUNCTIONS_LAYER or starts_with_create_function(header.body)
    obj = SqlObject(
        name=file.name,
        layer=file.layer,
        kind=FUNCTION if is_function else header.config.get("materialized", "view"),  # type: ignore[arg-type]
        path=file.path,
        sql=file.text if is_function else header.body,
        config=dict(header.config),
        code_version=file.code_version,
    )
    build = function_source if is_function else model_source
    return build(obj, file.text, header.line_count, header.key_lines)


def extra_source(obj: SqlObject) -> Source:
    if not obj.code_version:
        obj = replace(obj, code_version=code_version(obj.sql))
    if obj.is_function:
        return function_source(obj, obj.sql, 0, {})
    if not obj.sql.strip():  # no SQL to read: its depends_on are taken as given
        return Source(obj, obj.sql, 0)
    return model_source(obj, obj.sql, 0, {})
