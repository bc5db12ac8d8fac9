"""Who sees what: `superset/access.yaml` -> Superset roles, users and row-level security (plus the
grants of the read-only PostgreSQL roles), and publishing a dataset so that no manager ever
reads it unfiltered.

Each manager (a user, or a role whose members are managed elsewhere) gets one Superset role
holding `datasource_access` on the datasets of their dashboards, and one RLS rule on every
dataset with hierarchy columns (rls.py). Rules and roles access.yaml no longer wants lose their
permissions first, then go.

Access never waits for every dataset. The invariant "a manager reads a dataset with hierarchy
columns only through their RLS rule" is kept by two writers, so that one dataset failing, or
absent for now (a use view waiting for a form a deployment lacks), costs only that dataset:

* `publish_dataset` (one dataset's asset) imports the dataset and puts it in every managed RLS
  rule itself: an existing dataset before its import, a new one right after it is created, or
  takes it out once it has no hierarchy columns. A new dataset has a new id, so a new
  `datasource_access` permission that no role holds yet: it is never readable unfiltered. Only
  then does it grant that permission to the managers whose dashboards use it (creating a
  manager's rule on it when access ran before any hierarchy dataset existed), so access need
  not run after every dataset.
* `provision_access` (the access asset, downstream of the database connection only) works with
  what exists now: the datasets whose relation is in PostgreSQL and that are in Superset. Others
  are reported as skipped, never an error. It writes the rules first (their tables: every
  present hierarchy dataset plus what the rule already holds; it never takes a dataset out,
  since a dataset's asset may just have put it in), reads them back, and grants a role
  `datasource_access` on a hierarchy dataset only when the role's rule holds it. A manager whose
  places cannot be resolved is held back (their role loses its permissions); everyone else is
  provisioned.

Everything is resolved before the first write. PostgreSQL roles and grants are
cht_assets.warehouse.roles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cht_assets.bi.access_config import (
    BUILTIN_SUPERSET_ROLES,
    MANAGER_ROLE_PREFIX,
    RLS_NAME_PREFIX,
    AccessConfig,
    AccessError,
    Manager,
)
from cht_assets.bi.bundle import BundleError, Provisioned, find_one
from cht_assets.bi.cht_managers import MARKER_ROLE, with_cht_managers
from cht_assets.bi.client import JsonObject, SupersetClient
from cht_assets.bi.dashboard_specs import DashboardSpec
from cht_assets.bi.database import DatabaseConnection
from cht_assets.bi.datasets import Dataset, DatasetSource, dataset_uuid, provision_dataset, read_dataset
from cht_assets.bi.places import resolve_places
from cht_assets.bi.rls import (
    has_hierarchy,
    manager_rule,
    rls_clause,
    rls_rules,
    secure_dataset,
    table_ids,
    upsert_rls_rule,
)
from cht_assets.bi.security import (
    BASE_ROLE,
    add_role_permission,
    datasource_permission,
    datasource_permission_ids,
    disable_departed,
    ensure_role,
    roles_by_name,
    set_role_permissions,
    upsert_user,
)
from cht_assets.warehouse.roles import DbRoles, GrantChanges, sync_database_roles


@dataclass
class AccessReport:
    managers: list[JsonObject] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # datasets left out of this run, and why
    grants: list[GrantChanges] = field(default_factory=list)

    def record(self, change: str | None, what: str) -> None:
        if change == "created":
            self.created.append(what)
        elif change == "updated":
            self.updated.append(what)


@dataclass(frozen=True)
class PublishedDataset:
    dataset: Dataset
    id: int
    permission: str  # the view-menu name of its datasource_access permission


def publish_dataset(
    client: SupersetClient,
    conninfo: str,
    database: DatabaseConnection,
    dataset: Dataset,
    *,
    config: AccessConfig | None,
    sources: Sequence[DatasetSource],
    dashboards: Sequence[DashboardSpec],
) -> Provisioned:
    """Import one dataset, keep it in every managed RLS rule while it has hierarchy columns, then
    share it with the managers whose dashboards use it (see the module's docstring; without a
    valid `config` it is shared with no one new).
    `details["rls_rules"]` names the rules that hold it, `details["readers"]` the manager roles
    that may read it."""
    filtered = has_hierarchy(dataset)
    existing = find_one(client, "dataset", dataset_uuid(database, dataset.source))
    if existing is not None and filtered:
        secure_dataset(client, existing["id"], filtered=True)  # before its columns change
    result = provision_dataset(client, database, dataset)
    rules = secure_dataset(client, result.id, filtered=filtered)
    permission = datasource_permission(database.name, dataset.source.relation, result.id)
    published = PublishedDataset(dataset, result.id, permission)
    readers = share_dataset(client, conninfo, config, published, sources, dashboards) if config else []
    return dataclasses.replace(result, details={**result.details, "rls_rules": rules, "readers": readers})


def share_dataset(
    client: SupersetClient,
    conninfo: str,
    config: AccessConfig,
    published: PublishedDataset,
    sources: Sequence[DatasetSource],
    dashboards: Sequence[DashboardSpec],
) -> list[str]:
    """A dataset's own share of access, so that access need not run after every dataset: each
    manager whose dashboards use it gets `datasource_access` on it; on a hierarchy dataset only
    when their rule holds it and filters on their places as access.yaml gives them now. A rule
    missing only because no hierarchy dataset existed when access ran is created, on this
    dataset. Roles are made by `provision_access`: a manager without one yet is left to it.
    Returns the roles that may read the dataset."""
    config = with_cht_managers(conninfo, config)[0]
    roles = roles_by_name(client)
    relation = published.dataset.source.relation
    wanting = [
        m for m in config.managers if m.role_name in roles and relation in manager_datasets(m, dashboards)
    ]
    permission_id = datasource_permission_ids(client).get(published.permission) if wanting else None
    if permission_id is None:
        return []
    if has_hierarchy(published.dataset):
        places = resolve_places(conninfo, config, present_datasets(conninfo, sources)[0])
        rules = rls_rules(client)
        ready = []
        for manager in wanting:
            if any(ref in places.problems for ref in manager.places):
                continue  # held back by access
            clause = rls_clause(sorted({places.uuids[ref] for ref in manager.places}))
            rule = rules.get(manager.rule_name)
            if rule is None:
                body = manager_rule(manager.rule_name, roles[manager.role_name], clause, [published.id])
                upsert_rls_rule(client, body, None)
                ready.append(manager)
            elif rule["clause"] == clause and published.id in table_ids(rule):
                ready.append(manager)
        wanting = ready
    for manager in wanting:
        add_role_permission(client, roles[manager.role_name], permission_id)
    return [manager.role_name for manager in wanting]


def present_datasets(conninfo: str, sources: Sequence[DatasetSource]) -> tuple[list[Dataset], list[str]]:
    """The datasets whose relation exists in PostgreSQL now; why the others are left out."""
    datasets, skipped = [], []
    for source in sources:
        try:
            datasets.append(read_dataset(conninfo, source))
        except BundleError as error:
            skipped.append(f"{source.relation}: {error}")
    return datasets, skipped


def find_published(
    client: SupersetClient, database: DatabaseConnection, datasets: Sequence[Dataset]
) -> tuple[dict[str, PublishedDataset], list[str]]:
    """The datasets Superset has now, by relation; why the others are left out."""
    published, skipped = {}, []
    for dataset in datasets:
        relation = dataset.source.relation
        item = find_one(client, "dataset", dataset_uuid(database, dataset.source))
        if item is None:
            skipped.append(f"{relation}: not in Superset yet")
            continue
        permission = datasource_permission(database.name, relation, item["id"])
        published[relation] = PublishedDataset(dataset, item["id"], permission)
    return published, skipped


def manager_datasets(manager: Manager, dashboards: Sequence[DashboardSpec]) -> list[str]:
    slugs = {d.slug for d in dashboards}
    wanted = manager.dashboards if manager.dashboards is not None else tuple(sorted(slugs))
    unknown = sorted(set(wanted) - slugs)
    if unknown:
        raise AccessError(f"manager {manager.name!r}: unknown dashboard(s) {unknown}")
    names = [name for d in dashboards if d.slug in wanted for name in d.datasets]
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Plan:
    manager: Manager
    datasets: list[str]  # relation names of their dashboards
    places: list[str]  # uuids


def grantable(
    plan: Plan,
    published: Mapping[str, PublishedDataset],
    filtered: set[int],
    permission_ids: Mapping[str, int],
) -> tuple[dict[str, int], dict[str, str]]:
    """The manager's datasets they may read now (name -> permission id), and why not the others."""
    granted, skipped = {}, {}
    for name in plan.datasets:
        item = published.get(name)
        if item is None:
            skipped[name] = "not published"
        elif has_hierarchy(item.dataset) and item.id not in filtered:
            skipped[name] = "not in the manager's RLS rule"
        elif item.permission not in permission_ids:
            skipped[name] = f"Superset has no datasource_access permission {item.permission}"
        else:
            granted[name] = permission_ids[item.permission]
    return granted, skipped


def remove_stale(
    client: SupersetClient,
    wanted_rules: set[str],
    wanted_roles: set[str],
    rules: Mapping[str, JsonObject],
    roles: dict[str, int],
    report: AccessReport,
) -> None:
    """Rules and roles we made that access.yaml no longer wants: permissions first, then the rule."""
    stale_roles = {
        name for name in roles if name.startswith(MANAGER_ROLE_PREFIX) and name not in wanted_roles
    }
    for name, rule in rules.items():
        if name.startswith(RLS_NAME_PREFIX) and name not in wanted_rules:
            for role in rule["roles"]:
                if role["name"] not in wanted_roles and role["name"] not in BUILTIN_SUPERSET_ROLES:
                    change = set_role_permissions(client, role["id"], [])
                    report.record(change, f"permissions of role {role['name']}")
            client.delete(f"/api/v1/rowlevelsecurity/{rule['id']}")
            report.removed.append(f"RLS rule {name}")
    for name in sorted(stale_roles):
        report.record(set_role_permissions(client, roles[name], []), f"permissions of role {name}")
        client.delete(f"/api/v1/security/roles/{roles[name]}")
        report.removed.append(f"role {name}")


def plan_managers(
    conninfo: str,
    config: AccessConfig,
    datasets: Sequence[Dataset],
    dashboards: Sequence[DashboardSpec],
    report: AccessReport,
) -> tuple[list[Plan], list[Manager]]:
    """Managers ready to provision, and those held back because a place is unresolved."""
    places = resolve_places(conninfo, config, datasets)
    report.warnings += places.warnings
    ready, held = [], []
    for manager in config.managers:
        names = manager_datasets(manager, dashboards)
        problems = [places.problems[ref] for ref in manager.places if ref in places.problems]
        if problems:
            held.append(manager)
            report.warnings += [f"manager {manager.name!r} held back, no data access: {p}" for p in problems]
            report.managers.append({"manager": f"{manager.kind}:{manager.name}", "held": problems})
        else:
            uuids = sorted({places.uuids[ref] for ref in manager.places})
            ready.append(Plan(manager, names, uuids))
    return ready, held


def write_rules(
    client: SupersetClient,
    plans: Sequence[Plan],
    roles: dict[str, int],
    hierarchy_ids: set[int],
    report: AccessReport,
) -> dict[str, JsonObject]:
    """Each ready manager's role and RLS rule; returns the rules as Superset holds them after."""
    rules = rls_rules(client)
    for plan in plans:
        manager = plan.manager
        report.record(ensure_role(client, manager.role_name, roles), f"role {manager.role_name}")
        existing = rules.get(manager.rule_name)
        tables = hierarchy_ids | (table_ids(existing) if existing else set())
        if not tables:  # Superset refuses a rule on no dataset; no dataset needs one yet
            report.warnings.append(f"RLS rule {manager.rule_name} waits for a dataset with hierarchy columns")
            continue
        body = manager_rule(manager.rule_name, roles[manager.role_name], rls_clause(plan.places), tables)
        report.record(upsert_rls_rule(client, body, existing), f"RLS rule {manager.rule_name}")
    return rls_rules(client)


def provision_access(
    client: SupersetClient,
    conninfo: str,
    config: AccessConfig,
    database: DatabaseConnection,
    sources: Sequence[DatasetSource],
    dashboards: Sequence[DashboardSpec],
    *,
    db_roles: DbRoles,
    passwords: Mapping[str, str | None] | None = None,
    base_schema: str = "public",
) -> AccessReport:
    """Bring PostgreSQL grants, Superset roles, users and RLS rules in line with `config`, for
    the datasets of `sources` that exist now. `passwords` maps access.yaml's `password_env`
    names to their values."""
    passwords = passwords or {}
    report = AccessReport()
    config, report.warnings = with_cht_managers(conninfo, config)
    datasets, report.skipped = present_datasets(conninfo, sources)
    published, absent = find_published(client, database, datasets)
    report.skipped += absent
    plans, held = plan_managers(conninfo, config, datasets, dashboards, report)

    relations = [(d.source.schema, d.source.relation) for d in datasets]
    report.grants = sync_database_roles(
        conninfo, db_roles, config.view_schemas, config.view_prefixes, relations, base_schema
    )
    report.warnings += [warning for grants in report.grants for warning in grants.warnings]

    roles = roles_by_name(client)
    if BASE_ROLE not in roles:
        raise AccessError(f"Superset has no {BASE_ROLE!r} role: run `superset init`")
    if config.cht_roles:
        report.record(ensure_role(client, MARKER_ROLE, roles), f"role {MARKER_ROLE}")
    hierarchy_ids = {p.id for p in published.values() if has_hierarchy(p.dataset)}
    rules = write_rules(client, plans, roles, hierarchy_ids, report)
    permission_ids = datasource_permission_ids(client)
    for plan in plans:
        manager = plan.manager
        rule = rules.get(manager.rule_name)
        granted, skipped = grantable(plan, published, table_ids(rule) if rule else set(), permission_ids)
        change = set_role_permissions(client, roles[manager.role_name], granted.values())
        report.record(change, f"permissions of role {manager.role_name}")
        if manager.kind == "user":
            password = passwords.get(manager.password_env) if manager.password_env else None
            if manager.password_env and not password:
                report.warnings.append(f"user {manager.name}: ${manager.password_env} is not set")
            role_ids = [roles[BASE_ROLE], roles[manager.role_name]]
            role_ids += [roles[MARKER_ROLE]] if manager.from_cht else []
            change = upsert_user(client, manager, role_ids, password)
            report.record(change, f"user {manager.name}")
        report.managers.append(
            {
                "manager": f"{manager.kind}:{manager.name}",
                "role": manager.role_name,
                "places": plan.places,
                "datasets": list(granted),
                "datasets_skipped": skipped,
            }
        )
    for manager in held:
        if manager.role_name in roles:
            change = set_role_permissions(client, roles[manager.role_name], [])
            report.record(change, f"permissions of role {manager.role_name}")
    wanted_rules = {m.rule_name for m in config.managers}
    wanted_roles = {m.role_name for m in config.managers}
    remove_stale(client, wanted_rules, wanted_roles, rules, roles, report)
    if MARKER_ROLE in roles:  # CHT users who no longer manage (or the option turned off)
        cht_users = {plan.manager.name for plan in plans if plan.manager.from_cht}
        for name in disable_departed(client, roles[MARKER_ROLE], cht_users):
            report.removed.append(f"user {name} (disabled)")
    return report
