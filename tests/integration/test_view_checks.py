"""Every view's checks on the demo deployment: they pass on the data as generated, and they fail,
with examples, when the data (or a view's SQL) is broken. Each break runs in a transaction that
is rolled back, so the tests share one materialized deployment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cht_assets.defs import checks as check_wiring
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.sqlgraph.model import SqlObject
from cht_assets.warehouse.refresh import Buildable, RefreshResult
from tests.conftest import fresh_database
from tests.integration.pipeline import Deployment, materialize, new_deployment

SQL_ROOT = Path(__file__).resolve().parents[2] / "sql"
SEED, HOUSEHOLDS = 7, 40
VIEW_GROUPS = {"base", "compat", "contactviews", "formviews", "useviews"}


@dataclass
class Demo:
    deployment: Deployment
    result: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def demo(couch_server, embedded_pg_admin_url: str) -> Iterator[Demo]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for pg_url in fresh_database(embedded_pg_admin_url):
            deployment = new_deployment(couch_server.url, pg_url, monkeypatch)
            load_deployment(
                couch_clients(couch_server.url), generate(SEED, HOUSEHOLDS), db_prefix=deployment.prefix
            )
            yield Demo(deployment, materialize(deployment))


def sql_object(name: str) -> SqlObject:
    (path,) = SQL_ROOT.glob(f"*/{name}.sql")
    return SqlObject.from_sql(name, path.read_text(encoding="utf-8"), layer=path.parent.name, path=path)


def check_results(conn: psycopg.Connection, name: str) -> dict[str, dg.AssetCheckResult]:
    """The object's checks as its asset runs them after a full (re)build."""
    obj = sql_object(name)
    key = obj.unique_key or ("uuid",)
    built = Buildable(obj.name, obj.layer, obj.kind, obj.sql, obj.code_version, key, key[0])
    result = RefreshResult(obj.name, "rebuilt", 0, None, 0.0)
    found = check_wiring.run_checks(
        conn, obj, dg.AssetKey([obj.layer, name]), built, result, dg.get_dagster_logger()
    )
    return {check.check_name: check for check in found}


def failing(conn: psycopg.Connection, name: str) -> dict[str, dg.AssetCheckResult]:
    return {check: result for check, result in check_results(conn, name).items() if not result.passed}


def test_every_view_asset_ran_checks_and_all_pass_on_the_demo(demo: Demo) -> None:
    evaluations = demo.result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations), [
        (e.asset_key.to_user_string(), e.check_name, e.metadata) for e in evaluations if not e.passed
    ]
    checked = {e.asset_key for e in evaluations}
    materialized = {event.asset_key for event in demo.result.get_asset_materialization_events()}
    views = {key for key in materialized if key.path[0] in VIEW_GROUPS}
    assert {"contactview_clinic", "useview_chw_activity", "formview_pregnancy"} <= {k.path[-1] for k in views}
    assert views - checked == set()
    names = {(e.asset_key.path[-1], e.check_name) for e in evaluations}
    assert {
        ("useview_chw_activity", "reports_equal_form_metadata"),
        ("useview_population", "persons_equal_contactview"),
        ("useview_pregnancy", "registrations_equal_input"),
    } <= names


def drop_unique(conn: psycopg.Connection, table: str) -> None:
    """Drop what would refuse duplicate rows in `table` (rolled back later)."""
    for (constraint,) in conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u')", (table,)
    ).fetchall():
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"')
    for (index,) in conn.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass AND indisunique",
        (table,),
    ).fetchall():
        conn.execute(f"DROP INDEX {index}")


def duplicate_row(conn: psycopg.Connection, table: str, where: str) -> None:
    """Copy one row of `table` (rolled back later)."""
    drop_unique(conn, table)
    copied = conn.execute(f"INSERT INTO {table} SELECT * FROM {table} WHERE {where} LIMIT 1").rowcount
    assert copied == 1, (table, where)


def as_refreshed(conn: psycopg.Connection, name: str, sql: str | None = None) -> None:
    """`name` as the next refresh leaves it after a break, built from `sql` (else its own SQL): a
    view computes itself again; a rollup table is rebuilt, without its unique index, so that its
    checks see a broken grain (a refresh would fail on the index)."""
    obj = sql_object(name)
    if obj.kind == "view":
        if sql:
            conn.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        return
    sql = sql or obj.sql
    drop_unique(conn, name)
    conn.execute(f"DELETE FROM {name}")
    conn.execute(f"INSERT INTO {name} SELECT * FROM ({sql}) AS rebuilt")


COPY_DOCS = (
    "INSERT INTO raw.couchdb_docs (source, _id, _rev, doc) SELECT %(source)s, _id, _rev, doc "
    "FROM raw.couchdb_docs WHERE source = %(medic)s AND NOT _deleted AND _id IN ({ids})"
)


def copy_docs(conn: psycopg.Connection, deployment: Deployment, source_suffix: str, ids_sql: str) -> None:
    """The docs `ids_sql` selects, once more under another CouchDB database's name."""
    params = {"source": deployment.prefix + source_suffix, "medic": deployment.prefix}
    assert conn.execute(COPY_DOCS.format(ids=ids_sql), params).rowcount > 0


def break_raw_contacts(conn: psycopg.Connection, deployment: Deployment) -> None:
    # `couchdb` reads medic and sentinel: the same contact doc in both is one doc twice.
    copy_docs(conn, deployment, "-sentinel", "SELECT uuid FROM contactview_hospital")


def break_person_docs(conn: psycopg.Connection, deployment: Deployment) -> None:
    # A CHW's and a household contact's doc under a second database's name: every view reading
    # contactview_person_fields (which joins the raw docs by _id alone) repeats them.
    copy_docs(
        conn,
        deployment,
        "-users-meta",
        "SELECT uuid FROM contactview_chw UNION ALL (SELECT uuid FROM contactview_clinic_person LIMIT 1)",
    )


def break_contact_types(conn: psycopg.Connection, deployment: Deployment) -> None:
    updated = conn.execute(
        "UPDATE raw.couchdb_docs SET doc = jsonb_set(doc, '{settings,contact_types}', "
        "(doc #> '{settings,contact_types}') || (doc #> '{settings,contact_types,0}')) "
        "WHERE _id = 'settings' AND jsonb_typeof(doc #> '{settings,contact_types}') = 'array'"
    ).rowcount
    assert updated == 1


def break_hospital(conn: psycopg.Connection, deployment: Deployment) -> None:
    duplicate_row(conn, "contactview_metadata", "type = 'district_hospital'")


def break_reporting_chw(conn: psycopg.Connection, deployment: Deployment) -> None:
    # The hierarchy repeats a CHW: the activity join counts the CHW's reports twice.
    duplicate_row(
        conn, "contactview_hierarchy", "uuid = (SELECT chw FROM form_metadata ORDER BY uuid LIMIT 1)"
    )


def break_area(conn: psycopg.Connection, deployment: Deployment) -> None:
    duplicate_row(conn, "contactview_hierarchy", "uuid = (SELECT min(area_uuid) FROM useview_population)")


def break_progress(conn: psycopg.Connection, deployment: Deployment) -> None:
    duplicate_row(conn, "raw.couchdb_progress", "true")


def break_refresh_state(conn: psycopg.Connection, deployment: Deployment) -> None:
    duplicate_row(conn, "cht_meta.refresh_state", "object = 'contactview_contact'")


def break_telemetry(conn: psycopg.Connection, deployment: Deployment) -> None:
    # A telemetry doc without a device id: a row whose grain is NULL.
    inserted = conn.execute(
        "INSERT INTO raw.couchdb_docs (source, _id, _rev, doc) "
        "SELECT source, _id || '-no-device', _rev, doc #- '{metadata,deviceId}' FROM raw.couchdb_docs "
        "WHERE doc ->> 'type' = 'telemetry' AND NOT _deleted LIMIT 1"
    ).rowcount
    assert inserted == 1


GRAIN_BREAKS = [
    ("raw_contacts", break_raw_contacts, {"unique_key"}),
    ("contactview_person_fields", break_person_docs, {"unique_key"}),
    ("contactview_chw", break_person_docs, {"unique_key"}),
    ("contactview_clinic", break_person_docs, {"unique_key"}),
    ("contactview_clinic_person", break_person_docs, {"unique_key"}),
    ("contactview_contact_type", break_contact_types, {"unique_key"}),
    ("contactview_hospital", break_hospital, {"unique_key"}),
    ("useview_chw_activity", break_reporting_chw, {"unique_key", "reports_equal_form_metadata"}),
    ("useview_population", break_area, {"unique_key", "persons_equal_contactview"}),
    ("useview_data_freshness", break_progress, {"unique_key"}),
    ("useview_refresh_status", break_refresh_state, {"unique_key"}),
    ("useview_telemetry_devices", break_telemetry, {"unique_key"}),
]


@pytest.mark.parametrize(("name", "breaks", "expected"), GRAIN_BREAKS, ids=[case[0] for case in GRAIN_BREAKS])
def test_grain_check_fails_on_broken_data(demo: Demo, name: str, breaks, expected: set[str]) -> None:
    with psycopg.connect(demo.deployment.pg_url) as conn:
        assert "unique_key" in check_results(conn, name)
        assert failing(conn, name) == {}
        breaks(conn, demo.deployment)
        as_refreshed(conn, name)
        failed = failing(conn, name)
        conn.rollback()
    assert set(failed) == expected
    grain = failed["unique_key"]
    assert grain.severity == dg.AssetCheckSeverity.ERROR
    assert grain.metadata["count"].value > 0 and grain.metadata["examples"].value


VIEW_BREAKS = [
    ("useview_chw_activity", "FROM form_metadata\n", "FROM form_metadata WHERE formname <> 'delivery'\n",
     "reports_equal_form_metadata"),
    ("useview_population", "WHERE person.date_of_death IS NULL",
     "WHERE person.date_of_death IS NULL AND person.sex IS DISTINCT FROM 'female'", "persons_equal_contactview"),
    ("useview_pregnancy", "LEFT JOIN contactview_hierarchy AS h ON h.uuid = r.patient_uuid",
     "LEFT JOIN contactview_hierarchy AS h ON h.uuid = r.patient_uuid\n"
     "WHERE r.uuid <> (SELECT min(uuid) FROM useinput_pregnancy_registration)", "registrations_equal_input"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "old", "new", "check"), VIEW_BREAKS, ids=[case[0] for case in VIEW_BREAKS])
def test_reconciliation_fails_when_the_view_loses_rows(
    demo: Demo, name: str, old: str, new: str, check: str
) -> None:
    """A wrong edit of the view's SQL that keeps its grain: only the reconciliation sees it."""
    sql = sql_object(name).sql
    assert old in sql
    with psycopg.connect(demo.deployment.pg_url) as conn:
        assert failing(conn, name) == {}
        as_refreshed(conn, name, sql.replace(old, new))
        failed = failing(conn, name)
        conn.rollback()
    assert set(failed) == {check}
    assert failed[check].metadata["count"].value > 0
    assert failed[check].metadata["examples"].value


def test_a_report_without_a_readable_submitter_or_date_is_one_row_not_a_failure(demo: Demo) -> None:
    """chw_uuid and week may be NULL (`nullable_key`): such reports are counted in a row of their own."""
    with psycopg.connect(demo.deployment.pg_url) as conn:
        conn.execute(
            "INSERT INTO form_metadata (uuid, chw, chw_area, formname, reported) "
            "SELECT 'no-contact-' || n, NULL, NULL, 'delivery', NULL FROM generate_series(1, 2) AS n"
        )
        as_refreshed(conn, "useview_chw_activity")
        rows = conn.execute(
            "SELECT reports FROM useview_chw_activity WHERE chw_uuid IS NULL AND week IS NULL"
        ).fetchall()
        failed = failing(conn, "useview_chw_activity")
        conn.rollback()
    assert rows == [(2,)]
    assert failed == {}
