"""Superset provisioning, pure (no Dagster): a REST client, the assets-bundle builder, access.

client.py   SupersetClient: JWT + CSRF session, JSON errors, assets import
bundle.py   dashboards YAML + PostgreSQL catalog -> assets bundle -> Superset
access.py   access.yaml -> Superset roles, users, RLS; PostgreSQL read-only roles
"""

from cht_assets.bi.access import AccessConfig, AccessError, DbRoles, load_access, provision_access
from cht_assets.bi.bundle import (
    BundleError,
    DashboardSpec,
    DatabaseConnection,
    Dataset,
    DatasetSource,
    Provisioned,
    load_dashboards,
    provision_dashboard,
    provision_database,
    provision_dataset,
    read_dataset,
)
from cht_assets.bi.client import SupersetAPIError, SupersetClient

__all__ = [
    "AccessConfig",
    "AccessError",
    "BundleError",
    "DashboardSpec",
    "DatabaseConnection",
    "Dataset",
    "DatasetSource",
    "DbRoles",
    "Provisioned",
    "SupersetAPIError",
    "SupersetClient",
    "load_access",
    "load_dashboards",
    "provision_access",
    "provision_dashboard",
    "provision_database",
    "provision_dataset",
    "read_dataset",
]
