"""Row-level security: the managed rules (one "Regular" rule per manager, named `cht: <role>`)
and which datasets they cover.

A rule's clause is `area_uuids @> ARRAY['<place uuid>']::text[]`, ORed over the manager's
places; all rules share the group key `area`, so a user holding two manager roles sees the
union. Every managed rule covers every dataset with hierarchy columns, not only the manager's,
so access granted later is filtered too. Superset's PUT replaces a rule's tables and roles:
rules are always written whole.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from cht_assets.bi.access_config import RLS_NAME_PREFIX, AccessError
from cht_assets.bi.client import JsonObject, SupersetClient
from cht_assets.bi.datasets import Dataset
from cht_assets.sqlnames import quote_literal

AREA_COLUMN = "area_uuids"
RLS_GROUP_KEY = "area"
MANAGED_NOTE = "Managed by cht_assets from superset/access.yaml; edits are overwritten."
WRITE_ATTEMPTS = 5


class RlsError(RuntimeError):
    """A dataset could not be kept in the managed RLS rules."""


def has_hierarchy(dataset: Dataset) -> bool:
    return AREA_COLUMN in dataset.column_names


def rls_clause(place_uuids: Sequence[str]) -> str:
    """The RLS WHERE clause for a manager of these places (uuids quoted as literals)."""
    if not place_uuids:
        raise AccessError("an RLS clause needs at least one place")
    terms = [f"{AREA_COLUMN} @> ARRAY[{quote_literal(u)}]::text[]" for u in sorted(set(place_uuids))]
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def rls_rules(client: SupersetClient) -> dict[str, JsonObject]:
    return {rule["name"]: rule for rule in client.list_all("rowlevelsecurity")}


def managed_rules(client: SupersetClient) -> list[JsonObject]:
    return [rule for name, rule in rls_rules(client).items() if name.startswith(RLS_NAME_PREFIX)]


def table_ids(rule: JsonObject) -> set[int]:
    return {table["id"] for table in rule["tables"]}


def rule_body(rule: JsonObject) -> JsonObject:
    """A rule as listed, in the shape a POST or PUT takes."""
    return {
        "name": rule["name"],
        "description": rule.get("description"),
        "filter_type": rule["filter_type"],
        "tables": sorted(table_ids(rule)),
        "roles": sorted(r["id"] for r in rule["roles"]),
        "clause": rule["clause"],
        "group_key": rule.get("group_key"),
    }


def manager_rule(name: str, role_id: int, clause: str, tables: Collection[int]) -> JsonObject:
    return {
        "name": name,
        "description": MANAGED_NOTE,
        "filter_type": "Regular",
        "tables": sorted(tables),
        "roles": [role_id],
        "clause": clause,
        "group_key": RLS_GROUP_KEY,
    }


def upsert_rls_rule(client: SupersetClient, body: JsonObject, existing: JsonObject | None) -> str | None:
    """Create the rule or PUT it whole when it differs; "created", "updated" or None."""
    if existing is None:
        client.post("/api/v1/rowlevelsecurity/", body)
        return "created"
    if rule_body(existing) != body:
        client.put(f"/api/v1/rowlevelsecurity/{existing['id']}", body)
        return "updated"
    return None


def secure_dataset(client: SupersetClient, dataset_id: int, *, filtered: bool) -> list[str]:
    """Put a dataset in every managed rule (`filtered`: it has hierarchy columns) or take it out
    of them; returns the names of the rules that hold it. A PUT replaces the rule's tables and
    another run may write the same rule at the same time, so each write is read back and made
    again until the dataset is where it belongs."""
    for _ in range(WRITE_ATTEMPTS):
        rules = managed_rules(client)
        wrong = [rule for rule in rules if (dataset_id in table_ids(rule)) != filtered]
        if not wrong:
            return sorted(rule["name"] for rule in rules) if filtered else []
        for rule in wrong:
            tables = table_ids(rule) ^ {dataset_id}
            client.put(
                f"/api/v1/rowlevelsecurity/{rule['id']}", {**rule_body(rule), "tables": sorted(tables)}
            )
    raise RlsError(f"dataset {dataset_id}: the managed RLS rules kept changing under {WRITE_ATTEMPTS} writes")
