"""Column comments of a formview on a real PostgreSQL: set from the XForm's labels, only where
they differ (an unchanged refresh issues none), kept for a field a newer version dropped, and
label text from the form bound as a literal, never SQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from cht_assets.replica.schema import ensure_raw_schema
from cht_assets.warehouse.catalog import build_current_formview
from cht_assets.warehouse.comments import apply_comments
from cht_assets.warehouse.formviews import FormviewSpec
from cht_assets.warehouse.refresh import refresh
from cht_assets.warehouse.state import ensure_meta_schema
from cht_assets.xforms.formview import REQUIRED_FUNCTIONS

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "functions"
HOSTILE = "Water's $$ source'); DROP TABLE raw.couchdb_docs; -- \\"
SPEC = FormviewSpec("formview_water", "water", "form:water", "medic")


def xform(version: str, extra_field: bool) -> str:
    extra = "<n/>" if extra_field else ""
    control = '<input ref="/data/n"><label>How many?</label></input>' if extra_field else ""
    return f"""<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml">
      <h:head><h:title>Water</h:title><model>
        <instance><data id="water" version="{version}"><source/>{extra}</data></instance>
        <bind nodeset="/data/source" type="select1"/><bind nodeset="/data/n" type="int"/>
      </model></h:head><h:body>
        <select1 ref="/data/source"><label>{HOSTILE.replace("<", "&lt;")}</label>
          <item><label>Tap water</label><value>tap</value></item></select1>{control}
      </h:body></h:html>"""


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        ensure_raw_schema(connection, ["medic"])
        ensure_meta_schema(connection)
        for name in REQUIRED_FUNCTIONS:
            connection.execute((FUNCTIONS_DIR / f"{name}.sql").read_text())
        yield connection


def store_form(conn: psycopg.Connection, xml: str) -> None:
    conn.execute(
        "INSERT INTO raw.couchdb_form_xml (source, _id, _rev, attachment, xml) VALUES ('medic', %s, '1-a', 'xml', %s) "
        "ON CONFLICT (source, _id) DO UPDATE SET xml = excluded.xml",
        (SPEC.doc_id, xml),
    )


def comments(conn: psycopg.Connection) -> dict[str, str | None]:
    rows = conn.execute(
        "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
        "WHERE a.attrelid = 'public.formview_water'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
    ).fetchall()
    return dict(rows)


def test_formview_comments_follow_the_form_and_are_set_once(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO raw.couchdb_docs (source, _id, _rev, doc) VALUES ('medic', 'r1', '1-a', %s)",
        (
            Jsonb(
                {
                    "type": "data_record",
                    "form": "water",
                    "reported_date": 0,
                    "fields": {"source": "tap", "n": "2"},
                }
            ),
        ),
    )
    store_form(conn, xform("1", extra_field=True))
    built = build_current_formview(conn, SPEC)
    refresh(conn, built)
    held, statements = apply_comments(conn, built)
    assert statements == len(comments(conn)) + 1  # every column and the relation
    found = comments(conn)
    assert found["source"] == f"{HOSTILE} (select1, field source). Choices: tap = Tap water"
    assert found["n"] == "How many? (int, field n)"
    assert found["uuid"] == "The report's doc id (`_id`)."
    assert {c.name: c.comment for c in held.columns} == found
    assert conn.execute("SELECT count(*) FROM raw.couchdb_docs").fetchone()[0] == 1

    refresh(conn, build_current_formview(conn, SPEC))
    assert apply_comments(conn, build_current_formview(conn, SPEC))[1] == 0  # unchanged: no DDL

    store_form(conn, xform("2", extra_field=False))  # n dropped: its column stays, described so
    built = build_current_formview(conn, SPEC)
    refresh(conn, built)
    assert apply_comments(conn, built)[1] == 1
    assert (
        comments(conn)["n"]
        == "Field n (integer): no longer in the form; from reports made with an earlier version."
    )
