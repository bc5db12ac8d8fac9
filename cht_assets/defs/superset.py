"""Superset as assets: the database connection, one dataset per published view, one asset per
dashboard in `superset/dashboards/`, and the access rules of `superset/access.yaml`.

    superset/database                 <- (nothing)        connection as the read-only DB role
    superset/datasets/<view>          <- the view's asset  columns from the catalog; joins the RLS rules
    superset/dashboards/<slug>        <- its datasets      charts, layout, native filters
    superset/access                   <- the database      DB grants, Superset roles, users, RLS

superset/access depends on the database connection only: it provisions whatever datasets exist
when it runs (the others are listed as skipped), so one failing or absent dataset never leaves
managers without roles or RLS. Each dataset asset puts its own dataset in the managers' RLS
rules, so no dataset is ever readable unfiltered (cht_assets.bi.access explains why).

The logic lives in cht_assets.bi and cht_assets.warehouse.roles; this module only wires it.
Credentials come from cht_assets.settings at run time and never enter run config or metadata.
"""

import hashlib
import re
from collections.abc import Collection, Sequence
from pathlib import Path

import dagster as dg

from cht_assets.bi.access import AccessReport, provision_access, publish_dataset
from cht_assets.bi.access_config import ACCESS_PATH, AccessError, load_access
from cht_assets.bi.bundle import BundleError, Provisioned
from cht_assets.bi.client import SupersetClient
from cht_assets.bi.dashboard_specs import DASHBOARDS_DIR, DashboardSpec, load_dashboards
from cht_assets.bi.dashboards import provision_dashboard
from cht_assets.bi.database import DatabaseConnection, provision_database
from cht_assets.bi.datasets import DatasetSource, read_dataset
from cht_assets.defs.resources import PostgresResource
from cht_assets.settings import AccessSettings, load_access_settings, load_settings, named_secret
from cht_assets.warehouse.roles import DbRoles, PgRole, ensure_pg_role, grant_select

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


def database_roles(settings: AccessSettings) -> DbRoles:
    timeout = settings.reader_statement_timeout_seconds
    return DbRoles(
        PgRole(settings.superset_db_role, settings.superset_db_password, timeout),
        PgRole(settings.analyst_db_role, settings.analyst_db_password, timeout),
    )


def superset_connection(conninfo: str, settings: AccessSettings | None = None) -> DatabaseConnection:
    """Superset's connection to the database of `conninfo`, as the read-only Superset role."""
    settings = settings or load_access_settings()
    return DatabaseConnection.from_conninfo(
        settings.superset_database_name,
        conninfo,
        settings.superset_db_role,
        settings.superset_db_password,
        host=settings.superset_db_host,
        port=settings.superset_db_port,
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
        settings = load_access_settings()
        role = database_roles(settings).superset
        created = ensure_pg_role(postgres.conninfo, role)
        database = superset_connection(postgres.conninfo, settings)
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


# How often a dataset is published again while its view's columns keep changing: a view that
# changes faster than that is rebuilt in a loop, and its next update requests the dataset anyway.
REPUBLISH_TRIES = 3


def dataset_asset(
    source: DatasetSource, sources: Sequence[DatasetSource], specs: Sequence[DashboardSpec], access_path: Path
) -> dg.AssetsDefinition:
    @dg.asset(
        key=dataset_key(source),
        deps=[DATABASE_KEY, dg.AssetKey(list(source.asset_key))],
        group_name=GROUP,
        kinds=KINDS,
        description=(
            f"Superset dataset on `{source.schema}.{source.relation}`; columns follow the view. With "
            "hierarchy columns it is in every manager's row-level security rule."
        ),
        metadata={"dagster/table_name": f"{source.schema}.{source.relation}"},
    )
    def superset_dataset(
        context: dg.AssetExecutionContext, superset: SupersetResource, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        settings = load_access_settings()
        grant_select(postgres.conninfo, [settings.superset_db_role], source.schema, source.relation)
        dataset = read_dataset(postgres.conninfo, source)
        database = superset_connection(postgres.conninfo, settings)
        try:
            config = load_access(access_path)
        except AccessError as error:  # superset/access fails on it; this dataset need not
            context.log.warning(f"not shared with any manager: {error}")
            config = None
        with superset.client() as client:
            for attempt in range(1, REPUBLISH_TRIES + 1):
                result = publish_dataset(
                    client,
                    postgres.conninfo,
                    database,
                    dataset,
                    config=config,
                    sources=sources,
                    dashboards=specs,
                )
                # The view rebuilt while it was published (a new form version's column): its
                # update may reach the automation before this materialization and count as served.
                now = read_dataset(postgres.conninfo, source)
                if now.columns == dataset.columns or attempt == REPUBLISH_TRIES:
                    break
                context.log.info(f"{source.relation} changed its columns while published: again")
                dataset = now
            url = f"{client.url}/explore/?datasource_type=table&datasource_id={result.id}"
        context.log.info(f"dataset {result.name} (id {result.id}): {len(result.details['columns'])} columns")
        return dg.MaterializeResult(
            metadata={
                **provisioned_metadata(result, url),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(c.name, c.type) for c in dataset.columns]
                ),
                "columns": len(result.details["columns"]),
                "rls_rules": dg.MetadataValue.json(result.details["rls_rules"]),
                "readers": dg.MetadataValue.json(result.details["readers"]),
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
        database = superset_connection(postgres.conninfo)
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
        "skipped_datasets": dg.MetadataValue.json(report.skipped),
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
        deps=[DATABASE_KEY],
        # Within a run that also provisions datasets and dashboards, run after them.
        op_tags={"dagster/priority": "-1"},
        group_name=GROUP,
        kinds=KINDS,
        description=(
            "Who sees what (superset/access.yaml): read-only PostgreSQL roles for Superset and analysts "
            "(view layers only, never `raw`), manager roles, users and row-level security on every "
            "dataset with hierarchy columns. Works with the datasets that exist when it runs; the "
            "others are listed in `skipped_datasets`."
        ),
        code_version=file_version(access_path) if access_path.exists() else None,
    )
    def superset_access(
        context: dg.AssetExecutionContext, superset: SupersetResource, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        config = load_access(access_path)
        settings = load_access_settings()
        database = superset_connection(postgres.conninfo, settings)
        passwords = {m.password_env: named_secret(m.password_env) for m in config.managers if m.password_env}
        with superset.client() as client:
            report = provision_access(
                client,
                postgres.conninfo,
                config,
                database,
                sources,
                specs,
                db_roles=database_roles(settings),
                passwords=passwords,
                base_schema=load_settings().base_schema,
            )
        for warning in report.warnings + [f"dataset skipped: {s}" for s in report.skipped]:
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
        *(dataset_asset(source, datasets, specs, access_path) for source in datasets),
        *(dashboard_asset(spec, sources, paths.get(spec.slug)) for spec in specs),
        access_asset(datasets, specs, access_path),
    ]


def published_datasets(view_assets: Sequence[dg.AssetsDefinition]) -> list[DatasetSource]:
    """Every contactview, formview and useview becomes a dataset; functions and compat do not."""
    return [
        DatasetSource(tuple(key.path), "public", key.path[-1])
        for asset in view_assets
        for key in asset.keys
        if key.path[0] in PUBLISHED_LAYERS and key.path[-1].startswith(PUBLISHED_PREFIXES)
    ]
