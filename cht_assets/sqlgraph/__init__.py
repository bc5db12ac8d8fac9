"""SQL objects (one file each under `sql/`) as a dependency graph derived by sqlglot.

Pure: no Dagster, no database. `load_sql_dir` reads and resolves, `SqlGraph` orders,
`column_lineage` traces columns one step up.
"""

from cht_assets.sqlgraph.errors import SqlGraphError
from cht_assets.sqlgraph.graph import ExternalRelations, SqlGraph, load_sql_dir
from cht_assets.sqlgraph.lineage import ColumnLineage, column_lineage
from cht_assets.sqlgraph.model import SqlObject

__all__ = [
    "ColumnLineage",
    "ExternalRelations",
    "SqlGraph",
    "SqlGraphError",
    "SqlObject",
    "column_lineage",
    "load_sql_dir",
]
