"""Every environment variable the pipeline reads, in one place.

Unset variables mean the demo's local services (`make demo` starts them on these ports).
A `.env` file in the working directory is read first; real environment variables win.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import load_dotenv

DEMO_COUCHDB_URL = "http://127.0.0.1:15984"
DEMO_POSTGRES_URL = "postgresql://postgres@127.0.0.1:15432/cht_analytics"
DEFAULT_COUCHDB_DBS = ("medic", "medic-sentinel", "medic-users-meta", "medic-logs")
DEMO_SUPERSET_URL = "http://127.0.0.1:18088"
DEFAULT_SUPERSET_USER = "admin"
# Only for the local demo and the tests; a deployment sets SUPERSET_PASSWORD.
DEMO_SUPERSET_PASSWORD = "test-only-admin-password"  # noqa: S105
DEFAULT_BASE_SCHEMA = "public"
# A schema for cht-pipeline's base models: a plain lower-case name (as dbt's target schema, e.g.
# cht-sync's `v1`), never one the pipeline or PostgreSQL keeps for itself.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
RESERVED_SCHEMAS = frozenset({"raw", "cht_meta", "information_schema"})


@dataclass(frozen=True)
class Settings:
    couchdb_url: str
    couchdb_dbs: tuple[str, ...]
    postgres_url: str
    couchdb_batch_size: int
    superset_url: str
    superset_user: str
    superset_password: str
    base_schema: str = DEFAULT_BASE_SCHEMA
    dashboard_language: str | None = None  # None: the deployment's `locale`, else `en`


# A language code as CHT names its `messages-<code>` docs (`en`, `fr`, `sw`, `es-419`, `zh_CN`).
LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,8}([_-][A-Za-z0-9]{1,8})*")


def dashboard_language(value: str) -> str | None:
    """DASHBOARD_LANGUAGE, checked (it reaches SQL, as a quoted literal); unset: None."""
    code = value.strip()
    if code and not LANGUAGE_CODE.fullmatch(code):
        raise ValueError(f"DASHBOARD_LANGUAGE must be a language code such as en or fr; got {code!r}")
    return code or None


def base_schema(value: str) -> str:
    """BASE_SCHEMA, checked: it becomes an identifier in DDL and grants."""
    name = value.strip() or DEFAULT_BASE_SCHEMA
    if not SCHEMA_NAME.fullmatch(name) or name in RESERVED_SCHEMAS or name.startswith("pg_"):
        raise ValueError(
            f"BASE_SCHEMA must be a lower-case schema name other than raw, cht_meta, pg_*; got {name!r}"
        )
    return name


def split_list(value: str) -> tuple[str, ...]:
    """`a,b c` -> ('a', 'b', 'c'): CHT tools accept comma- or space-separated lists."""
    return tuple(part for part in value.replace(",", " ").split() if part)


def load_settings() -> Settings:
    load_dotenv(override=False)
    dbs = os.environ.get("COUCHDB_DBS", "")
    return Settings(
        couchdb_url=os.environ.get("COUCHDB_URL") or DEMO_COUCHDB_URL,
        couchdb_dbs=split_list(dbs) or DEFAULT_COUCHDB_DBS,
        postgres_url=os.environ.get("POSTGRES_URL") or DEMO_POSTGRES_URL,
        couchdb_batch_size=int(os.environ.get("COUCHDB_BATCH_SIZE") or 5000),
        superset_url=os.environ.get("SUPERSET_URL") or DEMO_SUPERSET_URL,
        superset_user=os.environ.get("SUPERSET_USER") or DEFAULT_SUPERSET_USER,
        superset_password=os.environ.get("SUPERSET_PASSWORD") or DEMO_SUPERSET_PASSWORD,
        base_schema=base_schema(os.environ.get("BASE_SCHEMA", "")),
        dashboard_language=dashboard_language(os.environ.get("DASHBOARD_LANGUAGE", "")),
    )


# --- operations: freshness, automation, alerts, backups (cht_assets.defs.automation & co.) ------

DEMO_DAGSTER_UI_URL = "http://127.0.0.1:3000"
# Beside the demo's other state; a deployment sets BACKUP_DIR (ideally on another disk).
DEFAULT_BACKUP_DIR = str(Path(__file__).resolve().parents[1] / ".demo" / "backups")
# The generated data dictionary (HTML + Markdown), beside the demo's state too.
DEFAULT_DICTIONARY_DIR = str(Path(__file__).resolve().parents[1] / ".demo" / "dictionary")


def load_dictionary_dir() -> Path:
    """DICTIONARY_DIR: where the data dictionary asset writes its HTML page and Markdown file."""
    load_dotenv(override=False)
    return Path(os.environ.get("DICTIONARY_DIR") or DEFAULT_DICTIONARY_DIR)


@dataclass(frozen=True)
class OpsSettings:
    """How fresh each layer must be, how the graph keeps itself fresh, where alerts go, backups.

    Windows and intervals are read when the code location loads; alert targets and credentials
    when a sensor or run uses them. None of the secrets (webhook URL, SMTP password) is ever logged.
    """

    freshness_raw_minutes: int
    freshness_views_minutes: int
    freshness_superset_minutes: int
    freshness_backup_minutes: int
    keepalive_minutes: int
    couchdb_poll_seconds: int
    automation_seconds: int
    pipeline_cron: str
    alert_webhook_url: str | None = field(repr=False)  # its path is the secret
    alert_email_to: tuple[str, ...]
    smtp_host: str | None
    smtp_port: int
    smtp_from: str | None
    smtp_user: str | None
    smtp_password: str | None = field(repr=False)
    smtp_tls: str
    dagster_ui_url: str
    dagster_webserver_url: str
    forms_poll_seconds: int
    alert_sensor_seconds: int
    backup_dir: str
    backup_keep: int
    backup_cron: str
    reconcile_cron: str
    pg_bin_dir: str | None
    backup_scratch_postgres_url: str | None = field(repr=False)
    backup_scratch_couchdb_url: str | None = field(repr=False)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None


def default_smtp_tls(port: int) -> str:
    return {465: "ssl", 587: "starttls"}.get(port, "none")


def load_ops_settings() -> OpsSettings:
    load_dotenv(override=False)
    raw_minutes = env_int("FRESHNESS_RAW_MINUTES", 30)
    smtp_port = env_int("SMTP_PORT", 25)
    ui_url = (os.environ.get("DAGSTER_UI_URL") or DEMO_DAGSTER_UI_URL).rstrip("/")
    return OpsSettings(
        freshness_raw_minutes=raw_minutes,
        freshness_views_minutes=env_int("FRESHNESS_VIEWS_MINUTES", 60),
        freshness_superset_minutes=env_int("FRESHNESS_SUPERSET_MINUTES", 60),
        freshness_backup_minutes=env_int("FRESHNESS_BACKUP_MINUTES", 26 * 60),
        # Raw assets are re-confirmed at least this often when CouchDB is idle; 0 turns it off.
        keepalive_minutes=env_int("KEEPALIVE_MINUTES", max(1, raw_minutes // 3)),
        couchdb_poll_seconds=env_int("COUCHDB_POLL_SECONDS", 15),
        automation_seconds=env_int("AUTOMATION_INTERVAL_SECONDS", 15),
        pipeline_cron=os.environ.get("PIPELINE_CRON") or "0 * * * *",
        alert_webhook_url=os.environ.get("ALERT_WEBHOOK_URL") or None,
        alert_email_to=split_list(os.environ.get("ALERT_EMAIL_TO", "")),
        smtp_host=os.environ.get("SMTP_HOST") or None,
        smtp_port=smtp_port,
        smtp_from=os.environ.get("SMTP_FROM") or None,
        smtp_user=os.environ.get("SMTP_USER") or None,
        smtp_password=os.environ.get("SMTP_PASSWORD") or None,
        smtp_tls=(os.environ.get("SMTP_TLS") or default_smtp_tls(smtp_port)).lower(),
        dagster_ui_url=ui_url,
        # Where the forms sensor asks for a reload of the code location: the webserver itself,
        # not an authenticating proxy in front of it.
        dagster_webserver_url=(os.environ.get("DAGSTER_WEBSERVER_URL") or ui_url).rstrip("/"),
        forms_poll_seconds=env_int("FORMS_POLL_SECONDS", 30),
        alert_sensor_seconds=env_int("ALERT_SENSOR_SECONDS", 30),
        backup_dir=os.environ.get("BACKUP_DIR") or DEFAULT_BACKUP_DIR,
        backup_keep=env_int("BACKUP_KEEP", 7),
        backup_cron=os.environ.get("BACKUP_CRON") or "0 1 * * *",
        reconcile_cron=os.environ.get("RECONCILE_CRON") or "0 2 * * *",
        pg_bin_dir=os.environ.get("PG_BIN_DIR") or None,
        backup_scratch_postgres_url=os.environ.get("BACKUP_SCRATCH_POSTGRES_URL") or None,
        backup_scratch_couchdb_url=os.environ.get("BACKUP_SCRATCH_COUCHDB_URL") or None,
    )


# --- Superset access: the read-only database roles and Superset's connection ------------------

DEFAULT_SUPERSET_DB_ROLE = "cht_superset"
DEFAULT_ANALYST_DB_ROLE = "cht_analyst"
# Only for the local demo and the tests; a deployment sets SUPERSET_DB_PASSWORD.
TEST_ONLY_SUPERSET_DB_PASSWORD = "test-only-superset-db-password"  # noqa: S105
DEFAULT_SUPERSET_DATABASE_NAME = "CHT analytics"
DEFAULT_ACCESS_FILE = Path(__file__).resolve().parents[1] / "superset" / "access.yaml"


@dataclass(frozen=True)
class AccessSettings:
    """The PostgreSQL roles Superset and analysts log in as (an unset analyst password makes a
    NOLOGIN group role), and how Superset reaches the analytics database: its name in Superset,
    and the host/port Superset dials when they differ from POSTGRES_URL's (e.g. from a container)."""

    superset_db_role: str
    superset_db_password: str = field(repr=False)
    analyst_db_role: str
    analyst_db_password: str | None = field(repr=False)
    superset_database_name: str
    superset_db_host: str | None
    superset_db_port: int | None
    access_file: Path  # who sees what: a deployment may keep it outside this checkout
    reader_statement_timeout_seconds: int  # both read-only roles' statement_timeout; 0: none


def load_access_settings() -> AccessSettings:
    load_dotenv(override=False)
    return AccessSettings(
        superset_db_role=os.environ.get("SUPERSET_DB_ROLE") or DEFAULT_SUPERSET_DB_ROLE,
        superset_db_password=os.environ.get("SUPERSET_DB_PASSWORD") or TEST_ONLY_SUPERSET_DB_PASSWORD,
        analyst_db_role=os.environ.get("ANALYST_DB_ROLE") or DEFAULT_ANALYST_DB_ROLE,
        analyst_db_password=os.environ.get("ANALYST_DB_PASSWORD") or None,
        superset_database_name=os.environ.get("SUPERSET_DATABASE_NAME") or DEFAULT_SUPERSET_DATABASE_NAME,
        superset_db_host=os.environ.get("SUPERSET_DB_HOST") or None,
        superset_db_port=env_int("SUPERSET_DB_PORT", 0) or None,
        access_file=Path(os.environ.get("SUPERSET_ACCESS_FILE") or DEFAULT_ACCESS_FILE),
        reader_statement_timeout_seconds=env_int("READER_STATEMENT_TIMEOUT", 60),
    )


def named_secret(name: str) -> str | None:
    """A secret whose variable is named by configuration (access.yaml's `password_env`), read
    when it is used."""
    load_dotenv(override=False)
    return os.environ.get(name) or None


# --- metrics: the Prometheus endpoint (`cht-metrics`, cht_assets.metrics) ----------------------

DEFAULT_METRICS_HOST = "127.0.0.1"
DEFAULT_METRICS_PORT = 9108


@dataclass(frozen=True)
class MetricsSettings:
    """Where `cht-metrics` listens; what it reads comes from the settings above (POSTGRES_URL,
    COUCHDB_URL, COUCHDB_DBS, DAGSTER_WEBSERVER_URL, BACKUP_DIR, FRESHNESS_RAW_MINUTES)."""

    host: str
    port: int


def load_metrics_settings() -> MetricsSettings:
    load_dotenv(override=False)
    return MetricsSettings(
        host=os.environ.get("METRICS_HOST") or DEFAULT_METRICS_HOST,
        port=env_int("METRICS_PORT", DEFAULT_METRICS_PORT),
    )
