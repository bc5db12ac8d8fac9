"""The data dictionary tables on real PostgreSQL, and the asset from an empty warehouse to a
replicated deployment (real CHT sample docs through pouchdb-server)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cht_assets.couch.client import CouchClient
from cht_assets.defs.dictionary import (
    DICTIONARY_PAGE_KEY,
    FORM_DICTIONARY_KEY,
    form_dictionary_asset,
    medic_db,
)
from cht_assets.defs.dictionary_page import dictionary_page_asset
from cht_assets.defs.resources import PostgresResource
from cht_assets.defs.views import load_catalog
from cht_assets.replica.replicate import replicate_database
from cht_assets.warehouse.dictionary import read_dictionary, write_dictionary
from cht_assets.warehouse.formviews import KNOWN_COLUMNS_DDL
from cht_assets.xforms.dictionary import form_dictionary
from cht_assets.xforms.formview import Column
from tests.integration.test_cht_sample_docs import load, sample_docs

DEMO_FORMS = sorted((Path(__file__).resolve().parents[2] / "cht_assets" / "demo" / "forms").glob("*.xml"))


def water_form(version: str, *, with_count: bool = True, well_label: str = "Well") -> str:
    count_node, count_bind, count_body = (
        (
            "<n/>",
            '<bind nodeset="/data/n" type="int"/>',
            '<input ref="/data/n"><label>How many?</label></input>',
        )
        if with_count
        else ("", "", "")
    )
    return f"""<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml">
      <h:head><h:title>Water</h:title><model>
        <instance><data id="water" version="{version}"><source/>{count_node}</data></instance>
        <bind nodeset="/data/source" type="select1"/>{count_bind}
      </model></h:head>
      <h:body>
        <select1 ref="/data/source"><label>Source</label>
          <item><label>Tap water</label><value>tap</value></item>
          <item><label>{well_label}</label><value>well</value></item>
        </select1>{count_body}
      </h:body></h:html>"""


def test_demo_forms_written_as_in_their_xml(pg_url: str) -> None:
    forms = [form_dictionary(path.read_bytes()) for path in DEMO_FORMS]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = write_dictionary(conn, forms)
        fields = conn.execute(
            "SELECT form, field, column_name, lang, label, type, collected, last_version, form_version "
            "FROM public.form_fields"
        ).fetchall()
        choices = conn.execute("SELECT form, field, value, lang, label FROM public.form_choices").fetchall()
    assert len(fields) == len(tables.fields) and len(choices) == len(tables.choices) and choices
    stored_labels = {(f, field, column, lang): label for f, field, column, lang, label, *_ in fields}
    stored_choices = {(f, field, value, lang): label for f, field, value, lang, label in choices}
    for form in forms:
        for entry in form.fields:
            for column in entry.columns:
                for lang, label in entry.labels.items():
                    assert stored_labels[(form.form_id, entry.name, column, lang)] == label
            for choice in entry.choices:
                for lang, label in choice.labels.items():
                    assert stored_choices[(form.form_id, entry.name, choice.value, lang)] == label
    assert all(row[6] and row[7] == row[8] for row in fields)  # collected, this version


def test_a_removed_field_keeps_its_entry_not_collected(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        write_dictionary(conn, [form_dictionary(water_form("1"))])
        # Version 2 drops `n`, relabels a choice; version 3 adds a choice.
        write_dictionary(conn, [form_dictionary(water_form("2", with_count=False, well_label="Borehole"))])
        tables = write_dictionary(
            conn,
            [form_dictionary(water_form("3", with_count=False, well_label="Borehole").replace(
                "</select1>", "<item><label>Rain</label><value>rain</value></item></select1>"))],
        )  # fmt: skip
        rows = conn.execute(
            "SELECT field, column_name, label, collected, form_version, last_version FROM public.form_fields "
            "WHERE form = 'water' ORDER BY field"
        ).fetchall()
        choices = conn.execute(
            "SELECT field, value, label FROM public.form_choices WHERE form = 'water' ORDER BY field, position"
        ).fetchall()
    assert rows == [
        ("n", "n", "How many?", False, "3", "1"),
        ("source", "source", "Source", True, "3", "3"),
    ]
    assert choices == [
        ("source", "tap", "Tap water"),
        ("source", "well", "Borehole"),
        ("source", "rain", "Rain"),
    ]
    assert [(r.field, r.last_version) for r in tables.retired] == [("n", "1")] and tables.changed
    with psycopg.connect(pg_url, autocommit=True) as conn:
        again = write_dictionary(
            conn, [form_dictionary(water_form("3", with_count=False, well_label="Borehole"))]
        )
        assert again.changed  # the `rain` choice went
        assert not write_dictionary(
            conn, [form_dictionary(water_form("3", with_count=False, well_label="Borehole"))]
        ).changed


def test_readers_see_the_old_dictionary_until_the_new_one_commits(pg_url: str) -> None:
    with (
        psycopg.connect(pg_url, autocommit=True) as writer,
        psycopg.connect(pg_url, autocommit=True) as reader,
    ):
        write_dictionary(writer, [form_dictionary(water_form("1"))])
        with writer.transaction():  # the write below becomes part of this still-open transaction
            write_dictionary(writer, [form_dictionary(water_form("2", well_label="Borehole"))])
            seen: list = []
            # Readers are not blocked and see the committed rows, never an empty table.
            thread = threading.Thread(
                target=lambda: seen.extend(
                    reader.execute("SELECT label FROM public.form_choices WHERE value = 'well'").fetchall()
                )
            )
            thread.start()
            thread.join(timeout=10)
            assert not thread.is_alive() and seen == [("Well",)]
        assert reader.execute("SELECT label FROM public.form_choices WHERE value = 'well'").fetchall() == [
            ("Borehole",)
        ]


def test_column_names_are_the_formviews_own(pg_url: str) -> None:
    """A formview whose column for a field got another name earlier (cht_meta.formview_columns)
    keeps it: the dictionary names that column, not a fresh one."""
    legacy = Column("source_legacy", "text", ("fields", "source"), "text")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS cht_meta")
        conn.execute(KNOWN_COLUMNS_DDL)
        conn.execute(
            "INSERT INTO cht_meta.formview_columns (view, columns) VALUES ('formview_water', %s)",
            (json.dumps([legacy.to_json()]),),
        )
        conn.execute("CREATE SCHEMA raw")
        conn.execute("CREATE TABLE raw.couchdb_form_xml (source text, _id text, xml text)")
        conn.execute(
            "INSERT INTO raw.couchdb_form_xml VALUES ('medic', 'form:water', %s)", (water_form("1"),)
        )
    from cht_assets.warehouse.dictionary import deployment_dictionaries

    with psycopg.connect(pg_url, autocommit=True) as conn:
        forms, problems = deployment_dictionaries(conn)
    assert not problems
    assert {entry.name: entry.columns for entry in forms[0].fields} == {
        "source": ("source_legacy",),
        "n": ("n",),
    }


def test_assets_on_an_empty_warehouse_then_on_a_synced_deployment(
    pg_url: str, couch_db: CouchClient, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DICTIONARY_DIR", str(tmp_path / "dictionary"))
    resources = {"postgres": PostgresResource(url=pg_url)}
    catalog = load_catalog()
    assets = [form_dictionary_asset("medic"), dictionary_page_asset("medic", catalog)]

    empty = dg.materialize(assets, resources=resources)
    assert empty.success
    page = (tmp_path / "dictionary" / "data_dictionary.html").read_text()
    assert 'id="no-forms"' in page and 'id="no-translations"' in page

    load(couch_db, sample_docs(shared_dir / "cht-sample-docs", "medic/*.json", "medic/forms/*.json"))
    replicate_database(pg_url, couch_db, source="medic", all_sources=["medic"], batch_size=200)
    synced = dg.materialize(assets, resources=resources)
    assert synced.success
    events = {e.asset_key: e.materialization.metadata for e in synced.get_asset_materialization_events()}
    tables = {key: value.value for key, value in events[FORM_DICTIONARY_KEY].items()}
    meta = {key: value.value for key, value in events[DICTIONARY_PAGE_KEY].items()}
    assert tables["forms"] == meta["forms"] == 19
    assert tables["unreadable_forms"] == 0 and tables["choice_rows"] > 0
    assert meta["translation_languages"] == "en"
    assert {"en", "fr", "sw"} <= set(meta["languages"].split(", "))
    assert meta["html_path"] == str(tmp_path / "dictionary" / "data_dictionary.html")
    page = Path(meta["html_path"]).read_text()
    markdown = Path(meta["markdown_path"]).read_text()
    assert "How would you like to report the pregnancy?" in page and "Pregnancy registration" in markdown
    assert "raw.couchdb_docs</code> <span" not in page  # the pipeline's plumbing is not documented as a view
    with psycopg.connect(pg_url) as conn:
        rows = read_dictionary(conn)
        person = conn.execute(
            "SELECT DISTINCT lang FROM public.form_fields WHERE form = 'contact:person:create'"
        ).fetchall()
    assert len(rows.fields) == tables["field_rows"]
    assert {lang for (lang,) in person} == {"en", "fr", "hi", "id", "ne", "sw"}
    assert all(row.view_name is None for row in rows.fields if row.form.startswith("contact:"))


def test_the_medic_database_is_found_among_the_replicated_ones() -> None:
    assert medic_db(["medic", "medic-sentinel"]) == "medic"
    assert medic_db(["d1-sentinel", "d1-users-meta", "d1-logs", "_users", "d1"]) == "d1"
    assert medic_db([]) == "medic"
