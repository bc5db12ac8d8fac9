"""Superset configuration for the CHT analytics pipeline (loaded through SUPERSET_CONFIG_PATH).

Everything secret comes from the environment:
  SUPERSET_METADATA_DB_URL  Superset's own metadata DB (PostgreSQL; SQLite breaks on datasets with
                            the same table name in two schemas). Required.
  SUPERSET_SECRET_KEY       signs sessions and encrypts stored database passwords. The default below
                            is for tests and the local demo only; set a long random value elsewhere.
The admin account (SUPERSET_USER / SUPERSET_PASSWORD) is created by cht_assets.servers.superset,
not here. CSRF protection stays on: the REST client sends the token with every write.
"""

import os

TEST_ONLY_SECRET_KEY = "test-only-insecure-secret-key-never-use-in-production-3f9a1c"

SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_METADATA_DB_URL"]
SECRET_KEY = os.environ.get("SUPERSET_SECRET_KEY") or TEST_ONLY_SECRET_KEY

WTF_CSRF_ENABLED = True
# Served on 127.0.0.1 behind whatever proxy terminates TLS; Talisman's HTTPS redirect and CSP
# would break the plain-http local server.
TALISMAN_ENABLED = False
CONTENT_SECURITY_POLICY_WARNING = False

# Access is per dataset (datasource_access) with row-level security on every dataset that has
# hierarchy columns. DASHBOARD_RBAC stays off: with it, dashboard access alone grants data access.
FEATURE_FLAGS = {
    "DASHBOARD_RBAC": False,
    "ENABLE_TEMPLATE_PROCESSING": False,  # no Jinja in SQL: RLS clauses and datasets stay literal
    "ALLOW_ADHOC_SUBQUERY": False,  # an ad-hoc metric or filter must not read past RLS via a subquery
}
FAB_ADD_SECURITY_API = True  # /api/v1/security/{roles,users,permissions-resources}/

# The provisioning client and the tests log in many times in a row.
AUTH_RATE_LIMITED = False
# 6.1.0 bug: dataset refresh passes the schema as the catalog and logs a connection error.
DATASET_AUTO_DETECT_DATETIME_FORMATS = False

SUPERSET_WEBSERVER_TIMEOUT = 120
ROW_LIMIT = 50000
