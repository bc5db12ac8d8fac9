"""The places of access.yaml -> uuids, looked up in the hierarchy columns of the datasets.

A name must match exactly one uuid. A place that cannot be resolved (unknown, ambiguous, or its
datasets absent for now) is a problem of the managers that name it only: the caller holds them
back and provisions everyone else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import psycopg

from cht_assets.bi.access_config import AccessConfig, PlaceRef
from cht_assets.bi.datasets import Dataset
from cht_assets.bi.rls import AREA_COLUMN, has_hierarchy
from cht_assets.sqlnames import quote_ident, quote_qualified


@dataclass
class Places:
    uuids: dict[PlaceRef, str] = field(default_factory=dict)
    problems: dict[PlaceRef, str] = field(default_factory=dict)  # place -> why it is unresolved
    warnings: list[str] = field(default_factory=list)


def name_lookups(datasets: Sequence[Dataset], levels: Sequence[str]) -> list[tuple[str, str]]:
    """(level, SQL) pairs: one query per hierarchy dataset and level it has columns for."""
    lookups = []
    for dataset in datasets:
        for level in levels:
            uuid_col, name_col = f"{level}_uuid", f"{level}_name"
            if {uuid_col, name_col} <= dataset.column_names:
                relation = quote_qualified(dataset.source.schema, dataset.source.relation)
                lookups.append(
                    (
                        level,
                        f"SELECT DISTINCT {quote_ident(uuid_col)} FROM {relation} "
                        f"WHERE {quote_ident(name_col)} = %s AND {quote_ident(uuid_col)} IS NOT NULL",
                    )
                )
    return lookups


def rows(conn: psycopg.Connection, query: str, value: str) -> Iterator[tuple]:
    """The rows of one lookup; none when its relation was dropped since its columns were read."""
    try:
        yield from conn.execute(query, (value,))
    except psycopg.errors.UndefinedTable:
        return


def resolve_places(conninfo: str, config: AccessConfig, datasets: Sequence[Dataset]) -> Places:
    """Each manager's places -> uuids. Warns about uuids no row rolls up to (yet)."""
    hierarchy = [d for d in datasets if has_hierarchy(d)]
    lookups = name_lookups(hierarchy, config.levels)
    places = Places()
    refs = {ref for manager in config.managers for ref in manager.places}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for ref in sorted(refs, key=PlaceRef.describe):
            if ref.uuid:
                places.uuids[ref] = ref.uuid
                if not has_rows(conn, hierarchy, ref.uuid):
                    places.warnings.append(f"no rows roll up to place {ref.describe()} yet")
                continue
            found: set[str] = set()
            for level, query in lookups:
                if ref.level in (None, level):
                    found.update(row[0] for row in rows(conn, query, str(ref.name)))
            if len(found) == 1:
                places.uuids[ref] = found.pop()
            else:
                problem = "is not in the hierarchy columns of any dataset" if not found else "is ambiguous"
                places.problems[ref] = f"place {ref.describe()} {problem}: give its level or its uuid"
    return places


def has_rows(conn: psycopg.Connection, datasets: Sequence[Dataset], place_uuid: str) -> bool:
    for dataset in datasets:
        relation = quote_qualified(dataset.source.schema, dataset.source.relation)
        query = (
            f"SELECT EXISTS (SELECT 1 FROM {relation} WHERE {quote_ident(AREA_COLUMN)} @> ARRAY[%s]::text[])"
        )
        if any(row[0] for row in rows(conn, query, place_uuid)):
            return True
    return False
