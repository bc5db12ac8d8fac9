"""`SqlObject`: one SQL file (or one generated statement) and what the graph learned about it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cht_assets.sqlgraph.headers import parse_header
from cht_assets.sqlgraph.parse import starts_with_create_function

Kind = Literal["view", "incremental", "table", "function"]
MATERIALIZATIONS: tuple[str, ...] = ("view", "incremental", "table")
FUNCTION: Kind = "function"


def code_version(text: str) -> str:
    """Changes whenever the file's text does: Dagster marks the asset stale from it."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def split_list(value: str, sep: str = ",") -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(sep) if part.strip())


@dataclass(frozen=True)
class SqlObject:
    """A view, table, incremental table or function.

    `sql` is the text to execute, never a regeneration by sqlglot (its output is not always
    the same PostgreSQL): the SELECT without its header comments, or the whole file for a
    function. `depends_on` holds object names and external relation names (`raw.couchdb_docs`);
    `columns` is empty when the output columns cannot be derived.
    """

    name: str
    layer: str
    kind: Kind
    path: Path
    sql: str
    config: dict[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    code_version: str = ""

    @classmethod
    def from_sql(
        cls,
        name: str,
        sql: str,
        *,
        layer: str,
        path: Path | None = None,
        config: dict[str, str] | None = None,
        columns: tuple[str, ...] = (),
    ) -> SqlObject:
        """A generated object (no file), e.g. a formview built from an XForm: `sql` may start
        with the same `-- key: value` headers as a file (`config` adds to them), and
        `load_sql_dir` derives its dependencies from it like a file's. `columns`, when given,
        win over the derived ones. `path` only appears in error messages, whose line numbers
        count from the statement (below the headers)."""
        path = path or Path(f"<generated>/{layer}/{name}.sql")
        header = parse_header(sql, path)
        merged = {**header.config, **(config or {})}
        is_function = starts_with_create_function(header.body)
        return cls(
            name=name,
            layer=layer,
            kind=FUNCTION if is_function else merged.get("materialized", "view"),  # type: ignore[arg-type]
            path=path,
            sql=sql if is_function else header.body,
            config=merged,
            columns=tuple(columns),
            code_version=code_version(sql),
        )

    @property
    def is_function(self) -> bool:
        return self.kind == FUNCTION

    @property
    def description(self) -> str:
        return self.config.get("description", "")

    @property
    def unique_key(self) -> tuple[str, ...]:
        """`-- unique_key: telemetry_doc_id, metric` -> ("telemetry_doc_id", "metric")."""
        return split_list(self.config.get("unique_key", ""))

    @property
    def nullable_key(self) -> tuple[str, ...]:
        """`-- nullable_key: chw_uuid, week`: key columns a row may leave NULL (a report without a
        readable submitter or date) — still unique, a NULL counting as one value; the grain check
        only. The other key columns must not be NULL."""
        return split_list(self.config.get("nullable_key", ""))

    @property
    def indexes(self) -> tuple[tuple[str, ...], ...]:
        """`-- indexes: uuid; parent_uuid, type` -> (("uuid",), ("parent_uuid", "type"))."""
        return tuple(cols for cols in map(split_list, self.config.get("indexes", "").split(";")) if cols)

    @property
    def gin_indexes(self) -> tuple[str, ...]:
        """`-- gin_indexes: area_uuids` -> ("area_uuids",): array columns searched by overlap."""
        return split_list(self.config.get("gin_indexes", ""))
