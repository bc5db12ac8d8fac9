"""Superset as assets: the database connection, one dataset per published view, one asset per
dashboard in `superset/dashboards/`, and the access rules of `superset/access.yaml`.

    superset/database                 <- (nothing)        connection as the read-only DB role
    superset/datasets/<view>          <- the view's asset  columns from the catalog
    superset/dashboards/<slug>        <- its datasets      charts, layout, native filters
    superset/access                   <- every dataset and dashboard: DB roles, Superset roles, RLS

The logic lives in cht_assets.bi; this module only wires it. Credentials are read from the
environment at run time (SUPERSET_URL, SUPERSET_USER, SUPERSET_PASSWORD, SUPERSET_DB_*,
ANALYST_DB_*) and never enter run config or metadata.
"""

import hashlib
import re
from collections.abc import Collection, Sequence
from pathlib import Path

import dagster as dg

from cht_assets.bi.access import (
    ACCESS_PATH,
    AccessReport,
    DbRoles,
    ensure_pg_role,
    grant_select,
    load_access,
    provision_access,
    superset_database,
)
from cht_assets.bi.bundle import (
    DASHBOARDS_DIR,
    BundleError,
    DashboardSpec,
    DatasetSource,
    Provisioned,
    load_dashboards,
    provision_dashboard,
    provision_database,
    provision_dataset,
    read_dataset,
)
from cht_assets.bi.client import SupersetClient
from cht_assets.defs.resources import PostgresResource
from cht_assets.settings import load_settings

GROUP = "superset"
KINDS = {"superset"}

PUBLISHED_LAYERS = ("contactviews", "formviews", "useviews")
PUBLISHED_PREFIXES = ("contactview_", "formview_", "useview_")
DATABASE_KEY = dg.AssetKey(["superset", "database"])
ACCESS_KEY = dg.AssetKey(["superset", "access"])


class SupersetResource(dg.ConfigurableResource):
    """A Superset server. `url` and `username` override SUPERSET_URL and SUPERSET_USER; the
    password is only ever read from SUPERSET_PASSWORD, at run time."""

    url: str | None = None
    username: str | None = None
    timeout_seconds: float = 120.0

    def client(self) -> SupersetClient:
        settings = load_settings()
        return SupersetClient(
            self.url or settings.superset_url,
            self.username or settings.superset_user,
            settings.superset_password,
            timeout=self.timeout_seconds,
        )


def asset_name(text: str) -> str:
    """`chw-activity` -> `chw_activity`: Dagster names allow letters, digits and `_`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def dataset_key(source: DatasetSource) -> dg.AssetKey:
    return dg.AssetKey(["superset", "datasets", asset_name(source.relation)])


def dashboard_key(spec: DashboardSpec) -> dg.AssetKey:
    return dg.AssetKey(["superset", "dashboards", asset_name(spec.slug)])


def file_version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def provisioned_metadata(result: Provisioned, url: str) -> dict[str, object]:
    return {"superset_id": result.id, "superset_uuid": result.uuid, "superset_url": dg.MetadataValue.url(url)}


def database_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=DATABASE_KEY,
        group_name=GROUP,
        kinds=KINDS,
        description=(
            "Superset's connection to the analytics database, as the read-only role SUPERSET_DB_ROLE "
            "(created here; its password comes from SUPERSET_DB_PASSWORD)."
        ),
    )
    def superset_database_connection(
        context: dg.AssetExecutionContext, superset: SupersetResource, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        role = DbRoles.from_env().superset
        created = ensure_pg_role(postgres.conninfo, role)
        database = superset_database(postgres.conninfo, role)
        with superset.client() as client:
            result = provision_database(client, database)
            url = f"{client.url}/databaseview/list/"
        context.log.info(f"Superset database {database.name!r} (id {result.id}) as role {role.name}")
        return dg.MaterializeResult(
            metadata={
                **provisioned_metadata(result, url),
                "database_name": database.name,
                "sqlalchemy_uri": database.sqlalchemy_uri(masked=True),
                "role_created": created,
            }
        )

    return superset_database_connection


def dataset_asset(source: DatasetSource) -> dg.AssetsDefinition:
    @dg.asset(
        key=dataset_key(source),
        deps=[DATABASE_KEY, dg.AssetKey(list(source.asset_key))],
        group_name=GROUP,
        kinds=KINDS,
        description=f"Superset dataset on `{source.schema}.{source.relation}`; columns follow the view.",
        metadata={"dagster/table_name": f"{source.schema}.{source.relation}"},
    )
    def superset_dataset(
        context: dg.AssetExecutionContext, superset: SupersetResource, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        role = DbRoles.from_env().superset
        grant_select(postgres.conninfo, [role.name], source.schema, source.relation)
        dataset = read_dataset(postgres.conninfo, source)
        database = superset_database(postgres.conninfo, role)
        with superset.client() as client:
            result = provision_dataset(client, database, dataset)
            url = f"{client.url}/explore/?datasource_type=table&datasource_id={result.id}"
        context.log.info(f"dataset {result.name} (id {result.id}): {len(result.details['columns'])} columns")
        return dg.MaterializeResult(
            metadata={
                **provisioned_metadata(result, url),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(c.name, c.type) for c in dataset.columns]
                ),
                "columns": len(result.details["columns"]),
            }
        )

    return superset_dataset


def dashboard_asset(
    spec: DashboardSpec, sources: dict[str, DatasetSource], path: Path | None
) -> dg.AssetsDefinition:
    used = [sources[name] for name in spec.datasets]

    @dg.asset(
        key=dashboard_key(spec),
        deps=[dataset_key(source) for source in used],
        group_name=GROUP,
        kinds=KINDS,
        description=f"Superset dashboard “{spec.title}” (`/superset/dashboard/{spec.slug}/`), from {spec.source}.",
        code_version=file_version(path) if path else None,
    )
    def superset_dashboard(
        context: dg.AssetExecutionContext, superset: SupersetResource, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        database = superset_database(postgres.conninfo, DbRoles.from_env().superset)
        datasets = {source.relation: read_dataset(postgres.conninfo, source) for source in used}
        with superset.client() as client:
            result = provision_dashboard(client, database, spec, datasets)
        context.log.info(
            f"dashboard {spec.slug} (id {result.id}): {result.details['charts']} charts, "
            f"{result.details['charts_removed']} removed"
        )
        return dg.MaterializeResult(
            metadata={
                **provisioned_metadata(result, str(result.details["url"])),
                "charts": result.details["charts"],
                "charts_removed": result.details["charts_removed"],
            }
        )

    return superset_dashboard


def access_metadata(report: AccessReport) -> dict[str, object]:
    """Names and counts only: never a password or a place's rows."""
    return {
        "managers": len(report.managers),
        "manager_roles": dg.MetadataValue.json(report.managers),
        "created": dg.MetadataValue.json(report.created),
        "updated": dg.MetadataValue.json(report.updated),
        "removed": dg.MetadataValue.json(report.removed),
        "warnings": dg.MetadataValue.json(report.warnings),
        "db_grants": dg.MetadataValue.json(
            [
                {
                    "role": g.role,
                    "relations": g.relations,
                    "granted": list(g.granted),
                    "revoked": list(g.revoked),
                }
                for g in report.grants
            ]
        ),
    }


def access_asset(
    sources: Sequence[DatasetSource], specs: Sequence[DashboardSpec], access_path: Path
) -> dg.AssetsDefinition:
    @dg.asset(
        key=ACCESS_KEY,
        deps=[*(dataset_key(s) for s in sources), *(dashboard_key(d) for d in specs)],
        group_name=GROUP,
        kinds=KINDS,
        description=(
            "Who sees what (superset/access.yaml): read-only PostgreSQL roles for Superset and analysts "
            "(view layers only, never `raw`), manager roles, users and row-level security on every "
            "dataset with hierarchy columns."
        ),
        code_version=file_version(access_path) if access_path.exists() else None,
    )
    def superset_access(
        context: dg.AssetExecutionContext, superset: SupersetResource, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        config = load_access(access_path)
        roles = DbRoles.from_env()
        database = superset_database(postgres.conninfo, roles.superset)
        datasets = [read_dataset(postgres.conninfo, source) for source in sources]
        with superset.client() as client:
            report = provision_access(
                client, postgres.conninfo, config, database, datasets, specs, db_roles=roles
            )
        for warning in report.warnings:
            context.log.warning(warning)
        context.log.info(
            f"{len(report.managers)} managers; created {len(report.created)}, updated {len(report.updated)}, "
            f"removed {len(report.removed)}"
        )
        return dg.MaterializeResult(metadata=access_metadata(report))

    return superset_access


def build_superset_assets(
    datasets: Sequence[DatasetSource],
    *,
    dashboards_dir: Path = DASHBOARDS_DIR,
    access_path: Path = ACCESS_PATH,
    dashboards: Collection[str] | None = None,
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """All Superset assets for the given views. `dashboards` (slugs) limits which dashboards of
    `dashboards_dir` are built (default: all); every dataset they use must be among `datasets`."""
    sources = {source.relation: source for source in datasets}
    if len(sources) != len(datasets):
        raise BundleError("two DatasetSources share a relation name")
    specs = load_dashboards(dashboards_dir)
    if dashboards is not None:
        unknown = sorted(set(dashboards) - {spec.slug for spec in specs})
        if unknown:
            raise BundleError(f"no dashboard with slug(s) {unknown} in {dashboards_dir}")
        specs = [spec for spec in specs if spec.slug in dashboards]
    for spec in specs:
        missing = sorted(set(spec.datasets) - set(sources))
        if missing:
            raise BundleError(f"{spec.source}: uses {missing}, which are not among the published datasets")
    paths = {spec.slug: dashboards_dir / spec.source for spec in specs}
    return [
        database_asset(),
        *(dataset_asset(source) for source in datasets),
        *(dashboard_asset(spec, sources, paths.get(spec.slug)) for spec in specs),
        access_asset(datasets, specs, access_path),
    ]


def published_datasets(view_assets: Sequence[dg.AssetsDefinition]) -> list[DatasetSource]:
    """Every contactview, formview and useview becomes a dataset; functions and compat do not."""
    return [
        DatasetSource(tuple(asset.key.path), "public", asset.key.path[-1])
        for asset in view_assets
        if asset.key.path[0] in PUBLISHED_LAYERS and asset.key.path[-1].startswith(PUBLISHED_PREFIXES)
    ]
