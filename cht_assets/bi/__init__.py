"""Superset provisioning, pure (no Dagster): a REST client, assets bundles, access.

client.py           SupersetClient: JWT + CSRF session, JSON errors, assets import
bundle.py           the assets bundle (zip of YAML, stable UUIDs) and lookups by UUID
database.py         Superset's connection to the analytics database
datasets.py         one dataset per view, columns from PostgreSQL's catalog
dashboard_specs.py  dashboards YAML -> checked specs
dashboards.py       specs -> charts, layout, native filters -> Superset
access_config.py    access.yaml -> managers and their places
places.py           places -> uuids, from the datasets' hierarchy columns
rls.py              the managed row-level security rules and the datasets they cover
security.py         Superset roles, datasource permissions, users
access.py           access.yaml -> roles, users, RLS; publishing a dataset without a gap in RLS
"""

from cht_assets.bi.access import provision_access, publish_dataset
from cht_assets.bi.access_config import AccessConfig, AccessError, load_access
from cht_assets.bi.bundle import BundleError, Provisioned
from cht_assets.bi.client import SupersetAPIError, SupersetClient
from cht_assets.bi.dashboard_specs import DashboardSpec, load_dashboards
from cht_assets.bi.dashboards import provision_dashboard
from cht_assets.bi.database import DatabaseConnection, provision_database
from cht_assets.bi.datasets import Dataset, DatasetSource, provision_dataset, read_dataset

__all__ = [
    "AccessConfig",
    "AccessError",
    "BundleError",
    "DashboardSpec",
    "DatabaseConnection",
    "Dataset",
    "DatasetSource",
    "Provisioned",
    "SupersetAPIError",
    "SupersetClient",
    "load_access",
    "load_dashboards",
    "provision_access",
    "provision_dashboard",
    "provision_database",
    "provision_dataset",
    "publish_dataset",
    "read_dataset",
]
