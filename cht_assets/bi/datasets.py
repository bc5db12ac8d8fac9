"""One Superset dataset per published view: columns from PostgreSQL's catalog on every run, then
a REST refresh, so a column added to a view appears in its dataset."""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

from cht_assets.bi.bundle import (
    BUNDLE_VERSION,
    BundleError,
    Provisioned,
    require_one,
    stable_uuid,
    zip_bundle,
)
from cht_assets.bi.client import JsonObject, SupersetClient
from cht_assets.bi.database import DatabaseConnection


@dataclass(frozen=True)
class DatasetSource:
    """A view (or table) to publish as a Superset dataset, and the asset that builds it:
    `asset_key` is the path of that asset's key (`("useviews", "useview_population")`)."""

    asset_key: tuple[str, ...]
    schema: str
    relation: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "asset_key", tuple(self.asset_key))


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    is_dttm: bool
    description: str | None = None  # the column's COMMENT in PostgreSQL

    @property
    def verbose_name(self) -> str:
        """What charts show as its header: a form field's question label, else `column_label`."""
        return field_label(self.description) or column_label(self.name)


@dataclass(frozen=True)
class Dataset:
    source: DatasetSource
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> frozenset[str]:
        return frozenset(column.name for column in self.columns)


def dataset_uuid(database: DatabaseConnection, source: DatasetSource) -> str:
    return stable_uuid("dataset", database.name, source.schema, source.relation)


# --- PostgreSQL's catalog ----------------------------------------------------------------------

COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory = 'D', col_description(c.oid, a.attnum)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def superset_type(pg_type: str) -> str:
    """The type name Superset's own column refresh stores (`timestamp with time zone` ->
    `TIMESTAMP WITH TIME ZONE`, `text[]` -> `TEXT[]`), so import and refresh agree."""
    return pg_type.upper()


def read_columns(conninfo: str, source: DatasetSource) -> tuple[Column, ...]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(COLUMNS_SQL, (source.schema, source.relation)).fetchall()
    if not rows:
        raise BundleError(f"{source.schema}.{source.relation} does not exist (or has no columns)")
    return tuple(
        Column(name, superset_type(pg_type), bool(is_dttm), description)
        for name, pg_type, is_dttm, description in rows
    )


def read_dataset(conninfo: str, source: DatasetSource) -> Dataset:
    return Dataset(source, read_columns(conninfo, source))


ACRONYMS = {
    "chw": "CHW",
    "uuid": "UUID",
    "uuids": "UUIDs",
    "anc": "ANC",
    "edd": "EDD",
    "lmp": "LMP",
    "id": "ID",
}


def column_label(name: str) -> str:
    """`chw_name` -> `CHW name`: what charts show as a column's header."""
    words = [ACRONYMS.get(word, word) for word in name.split("_") if word]
    if not words:
        return name
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


# A formview column's comment (`xforms.dictionary.describe_field`): `Label (type, field path)...`
FIELD_COMMENT = re.compile(r"^(?P<label>.+?) \([\w:-]+, field [^)]*\)")
VERBOSE_NAME_MAX = 150


def field_label(description: str | None) -> str | None:
    """The question label a formview column's comment starts with; None for other comments."""
    match = FIELD_COMMENT.match(description or "")
    if match is None:
        return None
    label = match["label"].strip()
    return label if len(label) <= VERBOSE_NAME_MAX else label[: VERBOSE_NAME_MAX - 1].rstrip() + "…"


def dataset_document(database: DatabaseConnection, dataset: Dataset) -> JsonObject:
    dttm = [column.name for column in dataset.columns if column.is_dttm]
    return {
        "table_name": dataset.source.relation,
        "schema": dataset.source.schema,
        "main_dttm_col": dttm[0] if dttm else None,
        "description": None,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "sql": None,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "uuid": dataset_uuid(database, dataset.source),
        "metrics": [
            {
                "metric_name": "count",
                "verbose_name": "COUNT(*)",
                "metric_type": "count",
                "expression": "COUNT(*)",
                "description": None,
                "d3format": None,
                "extra": {},
                "warning_text": None,
            }
        ],
        "columns": [
            {
                "column_name": column.name,
                "verbose_name": column.verbose_name,
                "is_dttm": column.is_dttm,
                "is_active": True,
                "type": column.type,
                "advanced_data_type": None,
                "groupby": True,
                "filterable": True,
                "expression": None,
                "description": column.description,
                "python_date_format": None,
                "extra": {},
            }
            for column in dataset.columns
        ],
        "version": BUNDLE_VERSION,
        "database_uuid": database.uuid,
        "is_managed_externally": True,
    }


def provision_dataset(client: SupersetClient, database: DatabaseConnection, dataset: Dataset) -> Provisioned:
    """Import one dataset (columns from the catalog), then let Superset refresh its columns."""
    require_one(client, "database", database.uuid, f"database {database.name!r}")
    uuid_ = dataset_uuid(database, dataset.source)
    name = f"datasets/{database.uuid}/{uuid_}.yaml"
    client.import_assets(zip_bundle({name: dataset_document(database, dataset)}), sparse=True)
    item = require_one(client, "dataset", uuid_, f"dataset {dataset.source.relation!r}")
    client.put(f"/api/v1/dataset/{item['id']}/refresh")
    columns = [c["column_name"] for c in client.get(f"/api/v1/dataset/{item['id']}")["result"]["columns"]]
    return Provisioned(
        "dataset",
        f"{dataset.source.schema}.{dataset.source.relation}",
        item["id"],
        uuid_,
        {"columns": columns},
    )
