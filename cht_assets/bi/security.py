"""Superset's security API: roles, their `datasource_access` permissions, and users.

Superset's writes replace lists (a role's permissions, a user's roles), so each is written whole,
and only when it differs. Functions that write return "created", "updated" or None.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from cht_assets.bi.access_config import Manager
from cht_assets.bi.client import JsonObject, SupersetClient

BASE_ROLE = "Gamma"


def datasource_permission(database_name: str, relation: str, dataset_id: int) -> str:
    """The view-menu name of a dataset's `datasource_access` permission (it embeds the id)."""
    return f"[{database_name}].[{relation}](id:{dataset_id})"


def datasource_permission_ids(client: SupersetClient) -> dict[str, int]:
    """view-menu name -> id of its `datasource_access` permission."""
    ids = {}
    for item in client.list_all("security/permissions-resources"):
        if item["permission"]["name"] == "datasource_access":
            ids[item["view_menu"]["name"]] = item["id"]
    return ids


def roles_by_name(client: SupersetClient) -> dict[str, int]:
    return {role["name"]: role["id"] for role in client.list_all("security/roles")}


def ensure_role(client: SupersetClient, name: str, roles: dict[str, int]) -> str | None:
    """The role exists (`roles` gains its id); "created" when it did not."""
    if name in roles:
        return None
    roles[name] = client.post("/api/v1/security/roles/", {"name": name})["id"]
    return "created"


def set_role_permissions(client: SupersetClient, role_id: int, permission_ids: Iterable[int]) -> str | None:
    """Replace a role's permissions (a POST replaces the whole set), when they differ."""
    wanted = sorted(set(permission_ids))
    current = client.get(f"/api/v1/security/roles/{role_id}/permissions/")["result"]
    if sorted(p["id"] for p in current) == wanted:
        return None
    client.post(f"/api/v1/security/roles/{role_id}/permissions", {"permission_view_menu_ids": wanted})
    return "updated"


def add_role_permission(client: SupersetClient, role_id: int, permission_id: int) -> str | None:
    current = [p["id"] for p in client.get(f"/api/v1/security/roles/{role_id}/permissions/")["result"]]
    if permission_id in current:
        return None
    client.post(
        f"/api/v1/security/roles/{role_id}/permissions",
        {"permission_view_menu_ids": [*current, permission_id]},
    )
    return "updated"


def user_by_name(client: SupersetClient, username: str) -> JsonObject | None:
    found = client.find("security/users", username=username)
    return found[0] if found else None


def upsert_user(
    client: SupersetClient, manager: Manager, role_ids: list[int], password: str | None
) -> str | None:
    """A manager's Superset user: roles exactly `role_ids`. `password` (from `password_env`) is
    set on every run when given; a new user without one gets a random password nobody knows
    (reset it in Superset, or log in through SSO)."""
    body: JsonObject = {
        "first_name": manager.first_name or manager.name,
        "last_name": manager.last_name or "(manager)",
        "email": manager.email or f"{manager.name}@localhost",
        "active": True,
        "roles": sorted(role_ids),
    }
    user = user_by_name(client, manager.name)
    if user is None:
        body.update(username=manager.name, password=password or secrets.token_urlsafe(24))
        client.post("/api/v1/security/users/", body)
        return "created"
    current = {
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "email": user["email"],
        "active": user["active"],
        "roles": sorted(r["id"] for r in user["roles"]),
    }
    if current != body or password:
        client.put(
            f"/api/v1/security/users/{user['id']}", {**body, **({"password": password} if password else {})}
        )
    return "updated" if current != body else None


def disable_departed(client: SupersetClient, marker_id: int, wanted: set[str]) -> list[str]:
    """Users holding the marker role `marker_id` who are not in `wanted`: inactive, with the marker
    role only (no data access); returns the usernames changed."""
    changed = []
    for user in client.list_all("security/users"):
        role_ids = sorted(r["id"] for r in user["roles"])
        if marker_id not in role_ids or user["username"] in wanted:
            continue
        if user["active"] or role_ids != [marker_id]:
            body = {k: user[k] for k in ("first_name", "last_name", "email")}
            client.put(
                f"/api/v1/security/users/{user['id']}", {**body, "active": False, "roles": [marker_id]}
            )
            changed.append(user["username"])
    return changed
