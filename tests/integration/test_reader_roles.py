"""The read-only roles' statement_timeout (READER_STATEMENT_TIMEOUT) on a real PostgreSQL: a
runaway query of Superset's or an analyst's role is cancelled; the pipeline's own role is not
limited; the setting is applied once, and again when it changes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from cht_assets.bi.access_config import DEFAULT_VIEW_PREFIXES, DEFAULT_VIEW_SCHEMAS
from cht_assets.defs.superset import database_roles
from cht_assets.settings import load_access_settings
from cht_assets.sqlnames import quote_ident
from cht_assets.warehouse.roles import (
    DbRoles,
    PgRole,
    apply_role_settings,
    reader_settings,
    role_settings,
    sync_database_roles,
)


@pytest.fixture
def role_names(pg_url: str) -> Iterator[tuple[str, str]]:
    """Two role names of this test; roles belong to the whole server, so they are dropped after."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"timeout_superset_{suffix}", f"timeout_analyst_{suffix}")
    yield names
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in names:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                conn.execute(f"DROP OWNED BY {quote_ident(name)}")
                conn.execute(f"DROP ROLE {quote_ident(name)}")


def as_role(pg_url: str, role: str) -> psycopg.Connection:
    # The test servers trust local connections: this tests the role's settings, not its password.
    return psycopg.connect(psycopg.conninfo.make_conninfo(pg_url, user=role), autocommit=True)


def sleep_outcome(conn: psycopg.Connection, seconds: float) -> tuple[str | None, float]:
    """(the error's class or None, seconds taken) of a pg_sleep as `conn`'s role."""
    started = time.monotonic()
    try:
        conn.execute("SELECT pg_sleep(%s)", (seconds,))
        error = None
    except psycopg.Error as exc:
        error = type(exc).__name__
    return error, time.monotonic() - started


def test_readers_slow_query_is_cancelled_the_pipeline_role_is_not(
    pg_url: str, role_names: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    superset, analyst = role_names
    monkeypatch.setenv("SUPERSET_DB_ROLE", superset)
    monkeypatch.setenv("ANALYST_DB_ROLE", analyst)
    monkeypatch.setenv("ANALYST_DB_PASSWORD", "x")
    monkeypatch.setenv("READER_STATEMENT_TIMEOUT", "1")
    # The roles as the pipeline makes them from its settings.
    roles = database_roles(load_access_settings())
    assert (roles.superset.statement_timeout_seconds, roles.analyst.statement_timeout_seconds) == (1, 1)
    sync_database_roles(pg_url, roles, DEFAULT_VIEW_SCHEMAS, DEFAULT_VIEW_PREFIXES)

    for name in role_names:
        with as_role(pg_url, name) as conn:
            assert conn.execute("SHOW statement_timeout").fetchone() == ("1s",)
            error, took = sleep_outcome(conn, 10)
            assert error == "QueryCanceled", (name, error)
            assert took < 5, f"{name}: cancelled only after {took:.1f} s"
            # Only the statement is cancelled: the session goes on.
            assert conn.execute("SELECT 1").fetchone() == (1,)

    # The pipeline's own role (the one that ran the above) keeps the server's default: no limit.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
        assert sleep_outcome(conn, 1.5)[0] is None


def test_timeout_applied_once_and_again_when_the_setting_changes(
    pg_url: str, role_names: tuple[str, str]
) -> None:
    superset, analyst = role_names

    def sync(timeout: int) -> None:
        roles = DbRoles(PgRole(superset, "x", timeout), PgRole(analyst, "x", timeout))
        sync_database_roles(pg_url, roles, DEFAULT_VIEW_SCHEMAS, DEFAULT_VIEW_PREFIXES)

    sync(60)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        wanted = reader_settings(PgRole(analyst, "x", 60))
        assert wanted == {"default_transaction_read_only": "on", "statement_timeout": "60000"}
        assert role_settings(conn, analyst) == wanted
        # A rerun with the same setting changes nothing.
        assert apply_role_settings(conn, analyst, wanted) == []
    with as_role(pg_url, superset) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1min",)

    sync(2)  # READER_STATEMENT_TIMEOUT changed: the next sessions get the new limit
    with as_role(pg_url, superset) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("2s",)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)

    sync(0)  # 0: no limit
    with as_role(pg_url, analyst) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
        assert sleep_outcome(conn, 1.5)[0] is None
