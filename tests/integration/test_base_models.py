"""cht-pipeline's base models (sql/base): their columns and types against the contract written down
from cht-pipeline 2.0's model YAMLs (tests/fixtures/cht_pipeline_contract.yaml), their contents
against oracles computed in Python (tests/support/oracles_base.py) from the real CHT sample docs
and from generated demo data, loaded into CouchDB, replicated and built by the real assets."""

from __future__ import annotations

import copy
import json
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from cht_assets.bi.access_config import DEFAULT_VIEW_PREFIXES, DEFAULT_VIEW_SCHEMAS
from cht_assets.defs.raw import build_raw_assets
from cht_assets.defs.views import build_view_assets
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.settings import load_settings
from cht_assets.sqlnames import quote_qualified
from cht_assets.warehouse.catalog import build_catalog, layer_schemas
from cht_assets.warehouse.roles import DbRoles, PgRole, sync_database_roles
from tests.integration.pipeline import SUFFIXES, Deployment, metadata, new_empty_deployment
from tests.integration.test_cht_sample_docs import load, sample_docs
from tests.support import dagster as support
from tests.support.oracles_base import Row, Sourced, base_rows, dangling_contacts

CONTRACT = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "cht_pipeline_contract.yaml").read_text())
RELATIONS = tuple(CONTRACT["relations"])
KEYS = {"user": "user_id", "contact_type": "id"}
GROUP_MEMBER = "c1f0e7a2-5b7e-4d59-9a43-2f7a0b1c9d02"  # a `group_member` contact: a person type
ZED = "org.couchdb.user:zed"
# WARN checks that find what the samples really hold (cht-sync's e2e docs reference absent contacts).
REFERENCE_CHECKS = {
    ("contact", "references_parent_uuid"): ("contact", "parent_uuid"),
    ("data_record", "contact_uuid_is_a_contact"): ("data_record", "contact_uuid"),
    ("user", "contact_uuid_is_a_contact"): ("user", "contact_uuid"),
}


@pytest.fixture
def deployment(couch_server, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    return new_empty_deployment(couch_server.url, pg_url, monkeypatch)


def materialize_base(deployment: Deployment) -> dg.ExecuteInProcessResult:
    """The raw replicas, then the functions and the base layer. The view assets come from the
    catalog without forms: no base model reads a formview, and generating them is slow."""
    resources = deployment.resources()
    with support.dagster_instance() as instance:
        support.materialize(build_raw_assets(), resources, instance=instance)
        catalog = build_catalog([], schemas=layer_schemas(load_settings()))
        assets = [*build_raw_assets(), *build_view_assets(catalog)]
        selection = [
            key
            for asset in assets
            if isinstance(asset, dg.AssetsDefinition)
            for key in asset.keys
            if key.path[0] in {"functions", "base"}
        ]
        return support.materialize(assets, resources, instance=instance, selection=selection)


def couch_docs(deployment: Deployment) -> list[Sourced]:
    """Every live doc of every database, numbers as written (Decimal), with its source."""
    docs = []
    for suffix in SUFFIXES:
        client = deployment.client(suffix)
        response = client._request("GET", "/_all_docs", params={"include_docs": "true"})
        docs += [
            Sourced(client.db, row["doc"]) for row in json.loads(response.text, parse_float=Decimal)["rows"]
        ]
    return docs


def saved_timestamps(pg_url: str) -> dict[tuple[str, str], datetime]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT source, _id, saved_timestamp AT TIME ZONE 'UTC' FROM raw.couchdb_docs")
        return {(source, doc_id): saved for source, doc_id, saved in rows.fetchall()}


def table_rows(pg_url: str, relation: str, schema: str = "public") -> list[Row]:
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM {quote_qualified(schema, relation)}").fetchall()  # noqa: S608


def assert_tables_equal_oracle(
    deployment: Deployment, schema: str = "public"
) -> tuple[dict[str, list[Row]], list[Sourced]]:
    """Every row and column of every base relation against the oracle; returns the oracle and
    the docs it was computed from."""
    docs = couch_docs(deployment)
    expected = base_rows(docs, saved_timestamps(deployment.pg_url))
    for relation in RELATIONS:
        key = KEYS.get(relation, "uuid")
        actual = {row[key]: row for row in table_rows(deployment.pg_url, relation, schema)}
        wanted = {row[key]: row for row in expected[relation]}
        assert sorted(actual, key=str) == sorted(wanted, key=str), relation
        wrong = {k: (actual[k], row) for k, row in wanted.items() if actual[k] != row}
        assert not wrong, f"{relation}: (table, oracle) {list(wrong.items())[:3]}"
    return expected, docs


def assert_checks(
    result: dg.ExecuteInProcessResult, expected: dict[str, list[Row]], docs: Sequence[Sourced]
) -> None:
    """Every base object ran its checks; all pass but the WARN reference checks, which find
    exactly the rows with the dangling references the oracle finds."""
    evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key.path[0] == "base"]
    assert {e.asset_key.path[-1] for e in evaluations} == set(RELATIONS)
    for evaluation in evaluations:
        name = (evaluation.asset_key.path[-1], evaluation.check_name)
        if name in REFERENCE_CHECKS:
            relation, column = REFERENCE_CHECKS[name]
            dangling = dangling_contacts(expected[relation], column, docs)
            found = evaluation.metadata["count"].value
            assert found == sum(1 for row in expected[relation] if row[column] in dangling), name
            assert evaluation.severity == dg.AssetCheckSeverity.WARN
        else:
            assert evaluation.passed, (name, evaluation.metadata)


def assert_contract(pg_url: str, schema: str = "public") -> None:
    types = CONTRACT["dbt_types"]
    with psycopg.connect(pg_url) as conn:
        for relation, columns in CONTRACT["relations"].items():
            found = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, relation),
            ).fetchall()
            assert found == [(name, types[dbt_type]) for name, dbt_type in columns.items()], relation


def sample_databases(root: Path) -> dict[str, list[dict[str, Any]]]:
    """The real samples by database suffix; cht-sync's e2e docs (hydrated parents, string dates,
    dangling references) in medic; ids in two databases (one row per id): a medic person again in
    medic-logs, a user account in medic whose user-settings are in medic-sentinel."""
    medic = sample_docs(
        root, "medic/*.json", "medic/forms/*.json", "verbatim/cht-sync-e2e.csv-to-docs.sample.json"
    )
    twin = next(copy.deepcopy(doc) for doc in medic if doc.get("type") == "person")
    twin.pop("_rev", None)
    account = {"_id": ZED, "type": "user", "name": "zed", "roles": ["chw"]}
    return {
        "": [*medic, account],
        "-sentinel": [*sample_docs(root, "medic-sentinel/*.json"), {**account, "type": "user-settings"}],
        "-users-meta": sample_docs(root, "medic-users-meta/*.json"),
        "-logs": [{**twin, "name": "a copy in another database"}],
        "-users": sample_docs(root, "_users/*.json"),
    }


def test_base_models_match_the_contract_and_the_sample_docs_through_edits_and_deletes(
    deployment: Deployment, shared_dir: Path
) -> None:
    for suffix, docs in sample_databases(shared_dir / "cht-sample-docs").items():
        load(deployment.client(suffix), docs)
    result = materialize_base(deployment)
    assert_contract(deployment.pg_url)
    expected, docs = assert_tables_equal_oracle(deployment)
    assert_checks(result, expected, docs)
    assert GROUP_MEMBER in {row["uuid"] for row in expected["person"]}, "a configured person type"
    assert dangling_contacts(expected["data_record"], "contact_uuid", docs), "dangling references exercised"
    assert_one_row_per_id(deployment, expected)
    assert_cht_pipeline_query_runs(deployment.pg_url, expected)

    # An edit; a report, a user and a patient deleted; `group_member` made a place type.
    client = deployment.client()
    patient = client.get_doc(expected["patient"][0]["uuid"])
    contact = client.get_doc(
        next(row["uuid"] for row in expected["contact"] if row["uuid"] != patient["_id"])
    )
    contact["name"], contact["parent"] = "Renamed", {"_id": "elsewhere"}
    report = client.get_doc(expected["data_record"][0]["uuid"])
    user = client.get_doc(next(row["user_id"] for row in expected["user"] if row["user_id"] != ZED))
    settings = client.get_doc("settings")
    for entry in settings["settings"]["contact_types"]:
        if entry["id"] == "group_member":
            entry.pop("person")
    deleted = [{**doc, "_deleted": True} for doc in (report, user, patient)]
    assert all("ok" in row for row in client.bulk_docs([contact, settings, *deleted]))
    result = materialize_base(deployment)
    modes = {name: metadata(result, name)["mode"] for name in ("contact", "data_record", "person", "place")}
    assert modes == {
        "contact": "incremental",
        "data_record": "incremental",
        "person": "rebuilt",
        "place": "rebuilt",
    }
    expected, docs = assert_tables_equal_oracle(deployment)
    assert_checks(result, expected, docs)
    assert GROUP_MEMBER in {row["uuid"] for row in expected["place"]}
    gone = {doc["_id"] for doc in deleted}
    assert not gone & {row[KEYS.get(name, "uuid")] for name in RELATIONS for row in expected[name]}


def assert_one_row_per_id(deployment: Deployment, expected: dict[str, list[Row]]) -> None:
    """An id in several databases: `user-settings` before a user account wherever they are,
    medic's person before its copy in medic-logs."""
    metadata_rows = {row["uuid"]: row for row in expected["document_metadata"]}
    assert metadata_rows["org.couchdb.user:andra"] == {
        **metadata_rows["org.couchdb.user:andra"],
        "doc_type": "user-settings",
        "dbname": deployment.prefix,
        "instance": None,
    }
    assert (metadata_rows[ZED]["doc_type"], metadata_rows[ZED]["dbname"]) == (
        "user-settings",
        f"{deployment.prefix}-sentinel",
    )
    assert "a copy in another database" not in {row["name"] for row in expected["contact"]}
    assert len(expected["user"]) == 5 and len(expected["telemetry"]) == 7 and len(expected["feedback"]) == 2


def analyst_url(pg_url: str, base_schema: str = "public") -> str:
    """A connection as the read-only analyst role, with the grants the pipeline gives it (the
    test servers trust local connections: this tests privileges, not passwords)."""
    suffix = uuid.uuid4().hex[:8]
    roles = DbRoles(PgRole(f"superset_{suffix}", "x"), PgRole(f"analyst_{suffix}", "x"))
    sync_database_roles(pg_url, roles, DEFAULT_VIEW_SCHEMAS, DEFAULT_VIEW_PREFIXES, base_schema=base_schema)
    return psycopg.conninfo.make_conninfo(pg_url, user=roles.analyst.name)


def assert_cht_pipeline_query_runs(
    pg_url: str, expected: dict[str, list[Row]], schema: str = "public", *, qualified: bool = True
) -> None:
    """SQL as dbt renders a cht-pipeline model over the base models ("database"."schema"."table",
    `"user"` quoted; or names alone, found through the analyst's search_path), run by an
    analyst: per household, the reports its people submitted and the users they are."""
    with psycopg.connect(analyst_url(pg_url, schema)) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]

        def ref(name: str) -> str:
            return f'"{database}"."{schema}"."{name}"' if qualified else f'"{name}"'

        rows = conn.execute(
            f"""
            SELECT contact.parent_uuid, count(DISTINCT data_record.uuid) AS reports,
                   count(DISTINCT u.user_id) AS users, bool_and(document_metadata.dbname IS NOT NULL) AS sourced
            FROM {ref("person")} person
            JOIN {ref("contact")} contact ON contact.uuid = person.uuid
            JOIN {ref("document_metadata")} document_metadata ON document_metadata.uuid = person.uuid
            LEFT JOIN {ref("data_record")} data_record ON data_record.contact_uuid = person.uuid
            LEFT JOIN {ref("user")} u ON u.contact_uuid = person.uuid
            GROUP BY contact.parent_uuid
            """  # noqa: S608 - our own names
        ).fetchall()
    by_contact = {row["uuid"]: row for row in expected["contact"]}
    wanted: dict[Any, tuple[int, int]] = {}
    for person in expected["person"]:
        parent = by_contact[person["uuid"]]["parent_uuid"]
        reports = sum(1 for report in expected["data_record"] if report["contact_uuid"] == person["uuid"])
        users = sum(1 for user in expected["user"] if user["contact_uuid"] == person["uuid"])
        before = wanted.get(parent, (0, 0))
        wanted[parent] = (before[0] + reports, before[1] + users)
    assert {row[0]: (row[1], row[2]) for row in rows} == wanted
    assert any(users for _, users in wanted.values()) and all(row[3] for row in rows)


@pytest.mark.parametrize("pg_url", ["pg18-embedded", "pg15-system"], indirect=True)
def test_base_models_equal_the_oracle_on_generated_data(deployment: Deployment) -> None:
    load_deployment(couch_clients(deployment.couch_url), generate(11, 4), db_prefix=deployment.prefix)
    result = materialize_base(deployment)
    expected, docs = assert_tables_equal_oracle(deployment)
    assert_checks(result, expected, docs)
    assert all(expected[name] for name in RELATIONS), [name for name in RELATIONS if not expected[name]]


def base_relations_by_schema(pg_url: str) -> dict[str, set[str]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'v') AND c.relname = ANY(%s)",
            (list(RELATIONS),),
        ).fetchall()
    found: dict[str, set[str]] = {}
    for schema, relation in rows:
        found.setdefault(schema, set()).add(relation)
    return found


def test_base_schema_holds_the_base_models_moved_not_rebuilt_and_back(
    deployment: Deployment, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BASE_SCHEMA=v1 (cht-sync's schema) on a warehouse built in public: the models move there
    with their rows (refreshed, not rebuilt), queries written for cht-pipeline run qualified or by
    name alone, changes keep flowing; unset again, they move back."""
    for suffix, docs in sample_databases(shared_dir / "cht-sample-docs").items():
        load(deployment.client(suffix), docs)
    materialize_base(deployment)
    assert base_relations_by_schema(deployment.pg_url) == {"public": set(RELATIONS)}
    # What cht-pipeline left in v1: its data_record (empty) and a model of the deployment's own on it.
    with psycopg.connect(deployment.pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA v1")
        conn.execute("CREATE TABLE v1.data_record AS TABLE public.data_record WITH NO DATA")
        conn.execute(
            "CREATE VIEW v1.reports_by_form AS SELECT form, count(*) AS n FROM v1.data_record GROUP BY form"
        )
        table_oid = conn.execute("SELECT 'v1.data_record'::regclass::oid").fetchone()[0]

    monkeypatch.setenv("BASE_SCHEMA", "v1")
    client = deployment.client()
    report = next(doc for doc in couch_docs(deployment) if doc.doc.get("type") == "data_record").doc
    assert "ok" in client.bulk_docs([{**client.get_doc(report["_id"]), "_deleted": True}])[0]
    result = materialize_base(deployment)
    assert base_relations_by_schema(deployment.pg_url) == {"v1": set(RELATIONS)}
    modes = {name: metadata(result, name)["mode"] for name in RELATIONS}
    assert modes.pop("data_record") == "rebuilt", "cht-pipeline's table taken over in place"
    assert set(modes.values()) <= {"incremental", "unchanged"}, modes
    assert metadata(result, "data_record")["dagster/table_name"] == "v1.data_record"
    assert_contract(deployment.pg_url, "v1")
    expected, docs = assert_tables_equal_oracle(deployment, "v1")
    assert report["_id"] not in {row["uuid"] for row in expected["data_record"]}
    assert_checks(result, expected, docs)
    with psycopg.connect(deployment.pg_url) as conn:
        assert conn.execute("SELECT 'v1.data_record'::regclass::oid").fetchone()[0] == table_oid
        by_form = dict(conn.execute("SELECT form, n FROM v1.reports_by_form").fetchall())
    assert by_form == dict(Counter(row["form"] for row in expected["data_record"]))
    assert_cht_pipeline_query_runs(deployment.pg_url, expected, "v1")
    assert_cht_pipeline_query_runs(deployment.pg_url, expected, "v1", qualified=False)

    monkeypatch.delenv("BASE_SCHEMA")
    result = materialize_base(deployment)
    assert base_relations_by_schema(deployment.pg_url) == {"public": set(RELATIONS)}
    assert {metadata(result, name)["mode"] for name in RELATIONS} <= {"incremental", "unchanged"}
    assert_tables_equal_oracle(deployment)
