"""cht-couch2pg leftovers: `refresh_matviews()` refreshes a deployment's own materialized views in
dependency order and leaves the pipeline's objects alone; `form_metadata.reported` is the same
whatever the TimeZone of the session that built it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cht_assets.couch.client import CouchClient
from cht_assets.replica.replicate import replicate_database
from cht_assets.settings import load_settings
from cht_assets.warehouse.__main__ import refresh_catalog
from cht_assets.warehouse.catalog import ViewCatalog, deployment_catalog
from cht_assets.warehouse.state import ensure_meta_schema
from tests.integration.test_cht_sample_docs import load, sample_docs

OURS = ("form_metadata", "contactview_metadata")
# Far apart, and neither is UTC: a wall time taken from the session shows at once.
EPOCH = datetime(1970, 1, 1)
ZONES = ("Pacific/Kiritimati", "America/Adak", "Asia/Kathmandu")


def with_upstream(catalog: ViewCatalog, names: Iterable[str]) -> set[str]:
    """`names` and every catalog object they read, directly or not."""
    wanted, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name in wanted or name not in catalog.entries:
            continue
        wanted.add(name)
        stack.extend(catalog[name].obj.depends_on)
    return wanted


def build(pg_url: str, names: Iterable[str], zone: str = "UTC") -> dict[str, str]:
    """Refresh `names` (and what they read) as `python -m cht_assets.warehouse` does, in a
    session whose TimeZone is `zone`."""
    catalog = deployment_catalog(load_settings())
    with psycopg.connect(pg_url, autocommit=True, options=f"-c TimeZone={zone}") as conn:
        ensure_meta_schema(conn)
        outcome = refresh_catalog(conn, catalog, with_upstream(catalog, names), say=lambda message: None)
    assert not {"failed", "blocked", "skipped"} & set(outcome.values()), outcome
    return outcome


def utc_wall_time(ms: Any) -> datetime:
    """The oracle: reported_date (epoch ms) as UTC wall time, computed here."""
    return EPOCH + timedelta(milliseconds=int(ms))


def reports(client: CouchClient) -> dict[str, datetime]:
    rows = client._request("GET", "/_all_docs", params={"include_docs": "true"}).json()["rows"]
    docs = [row["doc"] for row in rows]
    return {
        doc["_id"]: utc_wall_time(doc["reported_date"])
        for doc in docs
        if doc.get("type") == "data_record" and doc.get("form") is not None
    }


@pytest.fixture
def medic(couch_server, pg_url: str, shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> CouchClient:
    """The sample medic database in CouchDB and replicated; the environment points at it."""
    client = CouchClient(couch_server.url, f"m{uuid.uuid4().hex[:8]}")
    client.create_db()
    root = shared_dir / "cht-sample-docs"
    load(client, sample_docs(root, "medic/*.json", "medic/forms/*.json"))
    monkeypatch.setenv("COUCHDB_URL", couch_server.url)
    monkeypatch.setenv("COUCHDB_DBS", client.db)
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    replicate_database(pg_url, client, source=client.db, all_sources=[client.db])
    yield client
    client.delete_db()


def form_metadata(pg_url: str) -> dict[str, datetime]:
    with psycopg.connect(pg_url) as conn:
        return dict(conn.execute("SELECT uuid, reported FROM form_metadata").fetchall())


def new_report(doc_id: str, contact_id: str, reported_ms: int) -> dict[str, Any]:
    return {
        "_id": doc_id,
        "type": "data_record",
        "form": "pregnancy_home_visit",
        "contact": {"_id": contact_id},
        "reported_date": reported_ms,
        "fields": {},
    }


def test_form_metadata_reported_is_utc_whatever_the_session_time_zone(
    medic: CouchClient, pg_url: str
) -> None:
    expected = reports(medic)
    assert len(expected) > 50
    build(pg_url, ["form_metadata"], ZONES[0])
    assert form_metadata(pg_url) == expected
    with psycopg.connect(pg_url, autocommit=True) as conn:  # rebuilt in full under another zone
        conn.execute("DELETE FROM cht_meta.refresh_state WHERE object = 'form_metadata'")
    assert build(pg_url, ["form_metadata"], ZONES[1])["form_metadata"] == "rebuilt"
    assert form_metadata(pg_url) == expected
    # and rows maintained incrementally, by a session in a third zone
    medic.bulk_docs([new_report("late-report", "chw-1", 1_700_000_000_123)])
    replicate_database(pg_url, medic, source=medic.db, all_sources=[medic.db])
    assert build(pg_url, ["form_metadata"], ZONES[2])["form_metadata"] == "incremental"
    assert form_metadata(pg_url) == reports(medic)
    assert form_metadata(pg_url)["late-report"] == datetime(2023, 11, 14, 22, 13, 20, 123000)


DEPLOYMENT_OBJECTS = """
CREATE SCHEMA extra;
-- named so that alphabetical order is the wrong order
CREATE MATERIALIZED VIEW z_reports_per_chw AS
  SELECT chw, count(*) AS reports FROM form_metadata GROUP BY chw;
CREATE UNIQUE INDEX z_reports_per_chw_chw ON z_reports_per_chw (chw);
CREATE VIEW m_active_chws AS SELECT chw, reports FROM z_reports_per_chw WHERE reports > 0;
CREATE MATERIALIZED VIEW a_totals AS
  SELECT count(*) AS chws, sum(reports) AS reports,
         (SELECT count(*) FROM contactview_metadata) AS contacts
  FROM m_active_chws;
CREATE MATERIALIZED VIEW extra.b_share AS
  SELECT t.reports, t.chws, (SELECT count(*) FROM z_reports_per_chw) AS rows_below FROM a_totals AS t;
CREATE TABLE divisor (value integer);
INSERT INTO divisor VALUES (1);
CREATE MATERIALIZED VIEW c_fragile AS SELECT 10 / value AS quotient FROM divisor;
CREATE MATERIALIZED VIEW d_reads_fragile AS SELECT quotient FROM c_fragile;
CREATE MATERIALIZED VIEW e_never_filled AS SELECT count(*) AS reports FROM form_metadata WITH NO DATA;
"""
REFRESHED = re.compile(r"refresh_matviews: (\S+) refreshed in ")


def our_objects(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """What a refresh of ours would change: storage, recorded state, content."""
    rows = conn.execute(
        "SELECT c.relname, c.relfilenode, s.code_version, s.change_seq, s.row_count, s.refreshed_at "
        "FROM pg_class AS c JOIN cht_meta.refresh_state AS s ON s.object = c.relname "
        "WHERE c.relnamespace = 'public'::regnamespace ORDER BY c.relname"
    ).fetchall()
    contents = [conn.execute(f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {name} AS t").fetchone() for name in OURS]  # fmt: skip
    return [*rows, *contents]


@pytest.mark.parametrize("pg_url", ["pg18-embedded", "pg15-system"], indirect=True)
def test_refresh_matviews_refreshes_the_deployments_matviews_in_dependency_order(
    medic: CouchClient, pg_url: str
) -> None:
    build(pg_url, [*OURS, "refresh_matviews"])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(DEPLOYMENT_OBJECTS)
    medic.bulk_docs([new_report(f"new-{n}", f"new-chw-{n % 2}", 1_760_000_000_000 + n) for n in range(3)])
    replicate_database(pg_url, medic, source=medic.db, all_sources=[medic.db])
    build(pg_url, OURS)
    expected_reports = len(reports(medic))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE divisor SET value = 0")  # c_fragile's refresh now fails
        before = our_objects(conn)
        notices: list[tuple[str, str]] = []
        conn.add_notice_handler(
            lambda diag: notices.append((diag.severity_nonlocalized, diag.message_primary))
        )
        refreshed = conn.execute("SELECT refresh_matviews()").fetchone()[0]
        after = our_objects(conn)
        totals = conn.execute("SELECT chws, reports, contacts FROM a_totals").fetchone()
        share = conn.execute("SELECT reports, rows_below FROM extra.b_share").fetchone()
        chws = conn.execute(
            "SELECT count(*) FROM (SELECT chw FROM form_metadata GROUP BY chw) AS g"
        ).fetchone()[0]
        contacts = conn.execute("SELECT count(*) FROM contactview_metadata").fetchone()[0]
        populated = conn.execute("SELECT ispopulated FROM pg_matviews WHERE matviewname = 'e_never_filled'")
        assert populated.fetchone()[0]
        assert conn.execute("SELECT quotient FROM d_reads_fragile").fetchone()[0] == 10  # left as it was
    order = [m.group(1) for severity, text in notices if severity == "NOTICE" if (m := REFRESHED.match(text))]
    warnings = [text for severity, text in notices if severity == "WARNING"]
    assert order.index("z_reports_per_chw") < order.index("a_totals") < order.index("extra.b_share")
    assert set(order) == {"z_reports_per_chw", "a_totals", "extra.b_share", "e_never_filled"}
    assert refreshed == len(order) == 4
    assert any(text.startswith("refresh_matviews: c_fragile failed: division by zero") for text in warnings)
    assert any(text.startswith("refresh_matviews: d_reads_fragile skipped") for text in warnings)
    assert totals == (chws, expected_reports, contacts)
    assert share == (expected_reports, chws)
    assert after == before
