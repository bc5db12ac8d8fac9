"""Secrets: credentials in COUCHDB_URL, POSTGRES_URL, SUPERSET_PASSWORD and the DB role
passwords reach the servers (basic auth, libpq, Superset's login) and nothing else: not the
Dagster event logs, run records, materialization metadata, error messages, captured output,
the instance's files, nor the servers' own logs."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import psycopg
import pytest
from dagster._serdes import serialize_value

from cht_assets.defs.raw import build_raw_assets
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.defs.superset import SupersetResource, build_superset_assets
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from tests.conftest import RestartablePostgres
from tests.support.dagster import dagster_instance, location_assets
from tests.support.http import FaultProxy, serve

SUFFIXES = ("", "-sentinel", "-users-meta", "-logs")


def secret(name: str) -> str:
    """Characters a URL must escape, so both spellings get searched."""
    return f"{name}-{uuid.uuid4().hex[:12]}:@/#?%"


def spellings(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote(value), value.replace("%", "%25")}


def run_text(instance: dg.DagsterInstance) -> str:
    """Every run record and every event of every run, serialized whole (metadata, errors,
    stack traces, log messages), and every file the instance wrote."""
    parts = []
    for run in instance.get_runs():
        parts.append(serialize_value(run))
        parts += [serialize_value(record) for record in instance.all_logs(run.run_id)]
    for path in Path(instance.root_directory).rglob("*"):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def assert_absent(secrets: Iterable[str], haystacks: dict[str, str]) -> None:
    for value in secrets:
        for form in spellings(value):
            for where, text in haystacks.items():
                assert form not in text, f"a secret ({form[:8]}...) appears in {where}"


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        event.step_failure_data.error.to_string()
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data.error
    ]


def test_no_secret_in_logs_records_metadata_or_errors(
    restartable_pg: RestartablePostgres,
    couch_server,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    couch_secret, pg_secret, superset_secret = secret("couch"), secret("pg"), secret("superset")
    db_secrets = [secret("superset-db"), secret("analyst-db")]
    prefix = f"s{uuid.uuid4().hex[:8]}"
    load_deployment(couch_clients(couch_server.url), generate(7, 3), db_prefix=prefix)
    with psycopg.connect(restartable_pg.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE secrets")
    pg_url = f"postgresql://postgres:{quote(pg_secret, safe='')}@127.0.0.1:{restartable_pg.port}/secrets"
    proxy = FaultProxy(couch_server.url, forward_auth=False)
    monkeypatch.setenv("COUCHDB_DBS", ",".join(prefix + s for s in SUFFIXES))
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    monkeypatch.setenv("SUPERSET_PASSWORD", superset_secret)
    monkeypatch.setenv("SUPERSET_DB_PASSWORD", db_secrets[0])
    monkeypatch.setenv("ANALYST_DB_PASSWORD", db_secrets[1])
    # Resources as the code location builds them: every URL from the environment.
    resources = {"couchdb": CouchDBResource(timeout_seconds=5), "postgres": PostgresResource()}

    with serve(proxy) as proxy_url, dagster_instance() as instance:
        couch_url = proxy_url.replace("http://", f"http://cht_admin:{quote(couch_secret, safe='')}@")
        monkeypatch.setenv("COUCHDB_URL", couch_url)
        dg.materialize(build_raw_assets(), resources=resources, instance=instance)
        full = dg.materialize(location_assets(), resources=resources, instance=instance)
        assert full.success

        # Failures: CouchDB refusing the credentials, PostgreSQL without the database.
        refusing = FaultProxy(couch_server.url, forward_auth=True)
        with serve(refusing) as refusing_url:
            monkeypatch.setenv(
                "COUCHDB_URL",
                refusing_url.replace("http://", f"http://cht_admin:{quote(couch_secret, safe='')}@"),
            )
            refused = dg.materialize(
                build_raw_assets(), resources=resources, instance=instance, raise_on_error=False
            )
        monkeypatch.setenv("COUCHDB_URL", couch_url)
        monkeypatch.setenv("POSTGRES_URL", pg_url.replace("/secrets", "/no_such_database"))
        missing = dg.materialize(
            build_raw_assets(), resources=resources, instance=instance, raise_on_error=False
        )
        errors = failure_messages(refused) + failure_messages(missing)
        haystacks = {"dagster instance": run_text(instance)}

    assert not refused.success and not missing.success
    assert any("401" in e for e in errors) and any("no_such_database" in e for e in errors), errors
    # The credentials did reach CouchDB's side, as basic auth.
    basic = "Basic " + base64.b64encode(f"cht_admin:{couch_secret}".encode()).decode()
    assert basic in proxy.auth_seen
    captured = capfd.readouterr()
    haystacks |= {
        "error messages": "\n".join(errors),
        "stdout": captured.out,
        "stderr": captured.err,
        "python logging": "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "postgres log": (restartable_pg.data_dir.parent / "data.log").read_text(errors="replace"),
    }
    assert len(haystacks["dagster instance"]) > 10_000 and prefix in haystacks["dagster instance"]
    assert_absent([couch_secret, pg_secret, superset_secret, *db_secrets], haystacks)
    assert_absent([base64.b64encode(f"cht_admin:{couch_secret}".encode()).decode()], haystacks)


@pytest.mark.superset
def test_no_secret_from_the_superset_assets(
    superset_server, admin, analytics, provisioned, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Superset assets (as provisioned for the session, same access.yaml) log in with
    SUPERSET_PASSWORD and set both DB roles' passwords; a wrong password fails the run. None of
    them appears anywhere."""
    from tests.superset.conftest import SOURCES

    user, password, wrong = f"hostile_admin_{uuid.uuid4().hex[:6]}", secret("superset"), secret("wrong")
    db_secrets = [secret("superset-db"), secret("analyst-db")]
    role_ids = {role["name"]: role["id"] for role in admin.list_all("security/roles")}
    admin.post(
        "/api/v1/security/users/",
        {
            "username": user, "first_name": "H", "last_name": "A", "email": f"{user}@localhost",
            "active": True, "password": password, "roles": [role_ids["Admin"]],
        },
    )  # fmt: skip
    pg_secret = secret("pg")
    monkeypatch.setenv("POSTGRES_URL", psycopg.conninfo.make_conninfo(analytics.url, password=pg_secret))
    monkeypatch.setenv("SUPERSET_USER", user)
    monkeypatch.setenv("SUPERSET_PASSWORD", password)
    monkeypatch.setenv("SUPERSET_DB_PASSWORD", db_secrets[0])
    monkeypatch.setenv("ANALYST_DB_PASSWORD", db_secrets[1])
    resources = {"superset": SupersetResource(url=superset_server.url), "postgres": PostgresResource()}
    assets = build_superset_assets(SOURCES, access_path=provisioned.access_path)
    with dagster_instance() as instance:
        result = dg.materialize(assets, resources=resources, instance=instance)
        assert result.success
        monkeypatch.setenv("SUPERSET_PASSWORD", wrong)
        failed = dg.materialize(assets[:1], resources=resources, instance=instance, raise_on_error=False)
        haystacks = {"dagster instance": run_text(instance), "errors": "\n".join(failure_messages(failed))}
    assert not failed.success and "login" in haystacks["errors"], "a wrong password must fail the login"
    assert "superset_uuid" in haystacks["dagster instance"]
    haystacks["superset log"] = superset_server.log.read_text(errors="replace")
    assert_absent([password, wrong, pg_secret, *db_secrets], haystacks)
