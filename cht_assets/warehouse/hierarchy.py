"""`contactview_hierarchy`: every contact with its ancestors and one pair of columns
(`<type>_uuid`, `<type>_name`) per place type — CHT's built-in ones and those configured in the
settings doc. Generated, because the configured types are data."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from cht_assets.sqlnames import quote_ident, quote_literal, safe_identifier

HIERARCHY_VIEW = "contactview_hierarchy"
HIERARCHY_DESCRIPTION = "Every contact with its ancestors and one uuid/name column pair per place type."
FIXED_COLUMNS = (
    "uuid", "name", "contact_type", "is_person", "parent_uuid", "ancestor_uuids", "depth", "place_uuid", "area_uuids",
)  # fmt: skip
BUILTIN_PLACE_TYPES = ("district_hospital", "health_center", "clinic")
PLACE_TYPES_SQL = "SELECT id FROM contactview_contact_type WHERE NOT is_person ORDER BY configured, id"


def level_columns(place_types: Sequence[str]) -> list[tuple[str, str, str]]:
    """(place type, uuid column, name column) per type, with safe, distinct column names."""
    taken = set(FIXED_COLUMNS)
    return [
        (
            place_type,
            safe_identifier(f"{place_type}_uuid", taken),
            safe_identifier(f"{place_type}_name", taken),
        )
        for place_type in place_types
    ]


def hierarchy_select(place_types: Sequence[str]) -> str:
    levels = level_columns(place_types)
    outer = "".join(
        f",\n  lv.{quote_ident(uuid_col)}, lv.{quote_ident(name_col)}" for _, uuid_col, name_col in levels
    )
    inner = ",\n    ".join(
        f"max(a.uuid) FILTER (WHERE a.contact_type = {quote_literal(t)}) AS {quote_ident(u)},\n    "
        f"max(a.name) FILTER (WHERE a.contact_type = {quote_literal(t)}) AS {quote_ident(n)}"
        for t, u, n in levels
    )
    lateral = (
        f"LEFT JOIN LATERAL (\n  SELECT\n    {inner}\n  FROM unnest(c.area_uuids) AS u (uuid)\n"
        "  JOIN contactview_contact AS a ON a.uuid = u.uuid\n) AS lv ON true"
        if levels
        else ""
    )
    return f"""WITH c AS (
  SELECT
    c.uuid, c.name, c.contact_type, coalesce(t.is_person, false) AS is_person, c.parent_uuid,
    c.ancestor_uuids, cardinality(c.ancestor_uuids) AS depth,
    CASE WHEN coalesce(t.is_person, false) THEN c.parent_uuid ELSE c.uuid END AS place_uuid,
    CASE WHEN coalesce(t.is_person, false) THEN c.ancestor_uuids ELSE c.uuid || c.ancestor_uuids END AS area_uuids
  FROM contactview_contact AS c
  LEFT JOIN contactview_contact_type AS t ON t.id = c.contact_type
)
SELECT
  c.uuid, c.name, c.contact_type, c.is_person, c.parent_uuid, c.ancestor_uuids, c.depth, c.place_uuid,
  c.area_uuids{outer}
FROM c
{lateral}"""


def place_types(conn: psycopg.Connection) -> list[str]:
    """Built-in place types first (their columns exist in every deployment), then configured ones."""
    found = [row[0] for row in conn.execute(PLACE_TYPES_SQL).fetchall()]
    return [
        *[t for t in BUILTIN_PLACE_TYPES if t in found],
        *[t for t in found if t not in BUILTIN_PLACE_TYPES],
    ]


FIXED_DESCRIPTIONS = {
    "uuid": "The contact's doc id (`_id`): a person or a place.",
    "name": "The contact's name.",
    "contact_type": "The contact's type: `contact_type` for configurable hierarchies, else its `type` (person, clinic, health_center, district_hospital).",
    "is_person": "Whether the contact is a person (its type is a person type), not a place.",
    "parent_uuid": "The doc id of the contact's parent place (`parent._id`).",
    "ancestor_uuids": "The doc ids of the contact's ancestors, nearest first (`parent._id`, `parent.parent._id`, ...).",
    "depth": "How many ancestors the contact has (0 for a top-level place).",
    "place_uuid": "The place the contact belongs to: itself for a place, its parent for a person.",
    "area_uuids": "Every place whose area holds the contact: its place and that place's ancestors (what dashboards filter and row-level security confines on).",
}  # fmt: skip


def hierarchy_descriptions(place_types: Sequence[str]) -> dict[str, str]:
    """A description of every column `hierarchy_select(place_types)` makes."""
    descriptions = dict(FIXED_DESCRIPTIONS)
    for place_type, uuid_col, name_col in level_columns(place_types):
        descriptions[uuid_col] = (
            f"The doc id of the {place_type} place whose area holds the contact (itself if it is one); "
            "NULL when none does."
        )
        descriptions[name_col] = f"The name of the {place_type} place whose area holds the contact."
    return descriptions
