"""SQL objects (one file each under `sql/`) as a dependency graph derived by sqlglot.

Pure: no Dagster, no database. `load_sql_dir` reads and resolves, `SqlGraph` orders,
`column_lineage` traces columns one step up, `doc_fields` to the document fields they read.
"""

from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.sqlgraph.graph import ExternalRelations, SqlGraph, load_sql_dir
from cht_assets.sqlgraph.lineage import ColumnLineage, DocFields, column_lineage, column_sources, doc_fields
from cht_assets.sqlgraph.model import SqlObject

__all__ = [
    "ColumnLineage",
    "DocFields",
    "ExternalRelations",
    "SqlGraph",
    "SqlGraphError",
    "SqlObject",
    "column_lineage",
    "column_sources",
    "doc_fields",
    "load_sql_dir",
]
