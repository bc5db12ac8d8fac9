"""A refresh leaves what did not move alone: rollups whose inputs kept their versions are not
rebuilt, and checks whose inputs did not move carry their findings (within an hour), while every
object still equals its SQL run afresh. On generated data and on the real CHT sample docs."""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg.types.json import Jsonb

from cht_assets.couch.client import CouchClient
from cht_assets.defs.sensors import UPDATE_SEQ_SENSOR, seq_text
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.replica.schema import ensure_raw_schema
from cht_assets.sqlgraph.model import SqlObject
from cht_assets.warehouse.catalog import LANGUAGE_FUNCTION, build_catalog, refresh_entry
from cht_assets.warehouse.checks import reconciliations
from cht_assets.warehouse.state import ensure_meta_schema
from cht_assets.warehouse.versions import RAW_DOCS
from tests.conftest import fresh_database
from tests.integration.pipeline import (
    Deployment,
    age_findings,
    materialize,
    new_deployment,
    new_empty_deployment,
)
from tests.integration.test_activity_views import deploy, sample_docs, with_target_definitions
from tests.support.dagster import dagster_instance

SQL_ROOT = Path(__file__).resolve().parents[2] / "sql"
ROLLUPS = ("useview_population", "useview_chw_activity")
# Objects that read what has no version (the replication's progress, the refresh state, the
# dictionary's tables): refreshed and checked on every run.
VOLATILE = {"useview_data_freshness", "useview_refresh_status", "useview_choice_label"}
VIEW_LAYERS = {"base", "compat", "contactviews", "formviews", "functions", "useviews"}
# Checks that look at what an incremental refresh changed: run on every refresh, cheaply.
SCOPED = {"unique_key", "parity", "cast_failures", "doc_problems"}


@pytest.fixture(scope="module")
def generated(couch_server, embedded_pg_admin_url: str) -> Iterator[Deployment]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for pg_url in fresh_database(embedded_pg_admin_url):
            deployment = new_deployment(couch_server.url, pg_url, monkeypatch)
            load_deployment(couch_clients(couch_server.url), generate(11, 20), db_prefix=deployment.prefix)
            assert_all_passed(materialize(deployment))
            yield deployment


def assert_all_passed(result: dg.ExecuteInProcessResult, *, warnings: bool = True) -> None:
    """Every check passed (`warnings=False`: every ERROR check; the real samples hold docs that
    the WARN checks are there to point at)."""
    failed = [
        (e.asset_key.path[-1], e.check_name)
        for e in result.get_asset_check_evaluations()
        if not e.passed and (warnings or e.severity == dg.AssetCheckSeverity.ERROR)
    ]
    assert not failed, failed


def versions(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """Each materialized object's data version, as Dagster recorded it."""
    return {
        event.asset_key.path[-1]: event.materialization.tags["dagster/data_version"]
        for event in result.get_asset_materialization_events()
        if event.asset_key.path[0] in VIEW_LAYERS
    }


def stored_versions(pg_url: str) -> dict[str, str]:
    """Each object's data version as the warehouse keeps it (what the last run recorded)."""
    with psycopg.connect(pg_url) as conn:
        return dict(conn.execute("SELECT object, data_version FROM cht_meta.refresh_state").fetchall())


def modes(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {
        event.asset_key.path[-1]: event.materialization.metadata["mode"].value
        for event in result.get_asset_materialization_events()
        if "mode" in event.materialization.metadata
    }


def carried(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {
        (e.asset_key.path[-1], e.check_name): bool(e.metadata["carried"].value)
        for e in result.get_asset_check_evaluations()
        if "carried" in e.metadata
    }


def row_versions(pg_url: str, table: str) -> set[str]:
    """The transactions that wrote the table's rows: a rebuild writes them all again."""
    with psycopg.connect(pg_url) as conn:
        return {row[0] for row in conn.execute(f"SELECT DISTINCT xmin::text FROM {table}")}  # noqa: S608


def differs_from_its_sql(pg_url: str, name: str) -> int:
    """Rows in the object but not in its SQL run afresh, and the other way round."""
    (path,) = SQL_ROOT.glob(f"*/{name}.sql")
    sql = path.read_text(encoding="utf-8")
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            f'SELECT (SELECT count(*) FROM (TABLE "{name}" EXCEPT ALL SELECT * FROM ({sql}) AS a) AS x)'
            f' + (SELECT count(*) FROM (SELECT * FROM ({sql}) AS b EXCEPT ALL TABLE "{name}") AS y)'
        ).fetchone()[0]


def filtered_objects() -> list[SqlObject]:
    """The objects of sql/ that say which raw docs they read (`-- raw_docs:`)."""
    found = []
    for path in sorted(SQL_ROOT.glob("*/*.sql")):
        obj = SqlObject.from_sql(
            path.stem, path.read_text(encoding="utf-8"), layer=path.parent.name, path=path
        )
        if obj.config.get("raw_docs"):
            found.append(obj)
    return found


def assert_raw_docs_cover_what_they_read(pg_url: str) -> None:
    """Each `raw_docs` filter selects every raw doc its object reads: the object's SQL gives the
    same rows over the raw relations cut down to the docs the filter selects."""
    objects = filtered_objects()
    assert {"useview_translation", "useview_telemetry_devices", "raw_contacts"} <= {o.name for o in objects}
    with psycopg.connect(pg_url) as conn:
        for obj in objects:
            sql = obj.sql
            read = [r for r in sorted(RAW_DOCS) if re.search(rf"(?<![\w.]){re.escape(r)}\b", obj.sql)]
            for index, relation in enumerate(read):
                conn.execute(
                    f"CREATE TEMP VIEW only_filtered_{index} AS SELECT * FROM {relation} WHERE "
                    f"{obj.config['raw_docs']}"
                )
                sql = re.sub(rf"(?<![\w.]){re.escape(relation)}\b", f"pg_temp.only_filtered_{index}", sql)
            assert "only_filtered" in sql, obj.name
            (differ,) = conn.execute(
                f"SELECT (SELECT count(*) FROM (({obj.sql}) EXCEPT ALL ({sql})) AS a)"
                f" + (SELECT count(*) FROM (({sql}) EXCEPT ALL ({obj.sql})) AS b)"
            ).fetchone()
            (rows,) = conn.execute(f"SELECT count(*) FROM ({obj.sql}) AS t").fetchone()
            assert differ == 0, (
                f"{obj.name}: {differ} of {rows} rows differ with only the docs of its raw_docs filter"
            )
            conn.rollback()


def edit(deployment: Deployment, pick, change) -> dict:
    """Change one live doc of medic picked by `pick`, in CouchDB."""
    doc = next(d for d in deployment.docs() if pick(d))
    change(doc)
    deployment.client().bulk_docs([doc])
    return doc


def test_raw_docs_filters_cover_what_their_objects_read(generated: Deployment) -> None:
    assert_raw_docs_cover_what_they_read(generated.pg_url)


def test_each_raw_docs_filter_selects_by_an_index_not_by_reading_every_doc(generated: Deployment) -> None:
    """What a filtered object reads (and its docs_seq, and the checks of a view over it) is
    found by an index of the raw docs: the type, the translation ids, the settings id. Without
    one, every read of one kind of doc detoasted every doc to read its type."""
    with psycopg.connect(generated.pg_url) as conn:
        conn.execute("SET enable_seqscan = off")  # still chosen when no index can serve
        for obj in filtered_objects():
            query = f"EXPLAIN SELECT _id FROM raw.couchdb_docs WHERE {obj.config['raw_docs']}"
            plan = "\n".join(row[0] for row in conn.execute(query))
            assert "Seq Scan" not in plan, (obj.name, plan)


def seqs_now(deployment: Deployment) -> dict[str, str]:
    return {
        db: seq_text(CouchClient(deployment.couch_url, db).db_info()["update_seq"]) for db in deployment.dbs
    }


def code_location() -> dg.Definitions:
    """The code location as `dagster dev` loads it now (formviews of the forms synced)."""
    sys.modules.pop("cht_assets.definitions", None)
    try:
        return importlib.import_module("cht_assets.definitions").defs
    finally:
        sys.modules.pop("cht_assets.definitions", None)


def sensor_run(
    defs: dg.Definitions, deployment: Deployment, seen: dict[str, str]
) -> tuple[list[dg.AssetKey], set[str]]:
    """The update_seq sensor evaluated on the changes after `seen` (its cursor), then its runs
    executed as the daemon would. The assets of those runs, and the view-layer objects the
    automation then asks for (as it would on its next tick): none, the sensor's run held every
    one the changes reach."""
    views = [
        key for key in defs.resolve_asset_graph().materializable_asset_keys if key.path[0] in VIEW_LAYERS
    ]
    with dagster_instance() as instance:
        ticked = built_and_ticked(defs, instance)
        with dg.build_sensor_context(
            instance=instance, definitions=defs, cursor=json.dumps(seen), resources=deployment.resources()
        ) as context:
            result = defs.resolve_sensor_def(UPDATE_SEQ_SENSOR).evaluate_tick(context)
        assert result.run_requests, "the sensor saw the change"
        job = defs.resolve_implicit_global_asset_job_def()
        for request in result.run_requests:
            run = job.execute_in_process(
                instance=instance, asset_selection=request.asset_selection, tags=request.tags
            )
            assert run.success
        automation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=ticked)
    followed = {key.path[-1] for key in views if automation.get_num_requested(key)}
    return [key for request in result.run_requests for key in request.asset_selection], followed


def built_and_ticked(defs: dg.Definitions, instance: dg.DagsterInstance) -> str:
    """The replicas, views and dictionary recorded as built (the warehouse has them), and the automation's
    cursor after a first tick."""
    for key in defs.resolve_asset_graph().materializable_asset_keys:
        if key.path[0] in VIEW_LAYERS | {"raw", "dictionary"}:
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
    return dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor


def tables() -> list[str]:
    """The objects of sql/ kept as tables (incremental, or rebuilt in full)."""
    return [
        path.stem
        for path in sorted(SQL_ROOT.glob("*/*.sql"))
        if SqlObject.from_sql(path.stem, path.read_text(encoding="utf-8"), layer=path.parent.name).kind
        in ("incremental", "table")
    ]


def assert_the_sensor_run_suffices(
    defs: dg.Definitions, deployment: Deployment, change, *, versions_too: bool = False
) -> set[str]:
    """`change` made in CouchDB, the update_seq sensor's run alone (its views picked from the
    changed docs before the replication) leaves every table equal to its SQL run afresh.
    `versions_too`: a refresh of everything after it moves no object downstream of a replica
    that the sensor's run left out (their data versions; not for a delete, which moves every
    `raw_docs` filter's version, rows or not). Returns the objects of the sensor's run."""
    seen, before = seqs_now(deployment), stored_versions(deployment.pg_url)
    change()
    keys, followed = sensor_run(defs, deployment, seen)
    assert not followed, f"the automation follows the sensor's run with {sorted(followed)}"
    selected = {key.path[-1] for key in keys if key.path[0] in VIEW_LAYERS}
    for name in tables():
        assert differs_from_its_sql(deployment.pg_url, name) == 0, name
    if versions_too:
        graph = defs.resolve_asset_graph()
        raw = [key for key in graph.materializable_asset_keys if key.path[0] == "raw"]
        sensors_own = {key.path[-1] for key in dg.AssetSelection.assets(*raw).downstream().resolve(graph)}
        after = versions(materialize(deployment))
        moved = {name for name in after if after[name] != before.get(name)} & sensors_own
        assert moved <= selected, sorted(moved - selected)
    return selected


def test_the_sensor_refreshes_what_a_change_moves_and_not_the_rest(
    generated: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report, a person, a place renamed, a report deleted, a task and a user's settings: the
    update_seq sensor's run holds what each change moves, and the automation does not follow it
    with the rest; a report leaves the contacts, the users' docs and the translations out, a
    person the reports. A replica updated by another run (a keepalive) has the views follow."""
    monkeypatch.setenv("KEEPALIVE_MINUTES", "0")  # no keepalive tick between two evaluations
    defs = code_location()
    is_report = lambda d: d.get("type") == "data_record" and d.get("form") == "pregnancy"  # noqa: E731
    selected = assert_the_sensor_run_suffices(
        defs,
        generated,
        lambda: edit(generated, is_report, lambda d: d.update(reported_date=d["reported_date"] + 1)),
        versions_too=True,
    )
    assert {"data_record", "formview_pregnancy", "useview_pregnancy", "useview_chw_activity"} <= selected
    assert not selected & {
        "contact", "contactview_contact", "contactview_hierarchy", "useview_population", "user",
        "useview_translation", "formview_delivery", "useview_task", "telemetry",
    }, selected  # fmt: skip
    selected = assert_the_sensor_run_suffices(
        defs,
        generated,
        lambda: edit(
            generated,
            lambda d: d.get("type") == "person" and d.get("sex") == "female",
            lambda d: d.update(sex="male"),
        ),
    )  # the report's refresh of everything above checked versions: not again (~25 s)
    assert {"contact", "contactview_hierarchy", "useview_population"} <= selected
    assert not selected & {"formview_pregnancy", "data_record", "telemetry"}

    def rename_a_place_and_delete_a_report() -> None:
        edit(generated, lambda d: d.get("type") == "health_center", lambda d: d.update(name=f"{d['name']} 2"))
        doc = next(d for d in generated.docs() if is_report(d))
        generated.client().bulk_docs([{"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True}])

    assert_the_sensor_run_suffices(defs, generated, rename_a_place_and_delete_a_report)

    def edit_a_task_and_a_user() -> None:
        for kind in ("task", "user-settings"):
            edit(generated, lambda d, kind=kind: d.get("type") == kind, lambda d: d.update(edited=1))

    assert_the_sensor_run_suffices(defs, generated, edit_a_task_and_a_user)

    graph = defs.resolve_asset_graph()
    medic = next(key for key in graph.materializable_asset_keys if key.path == ["raw", generated.prefix])
    with dagster_instance() as instance:
        ticked = built_and_ticked(defs, instance)
        assert (
            defs.resolve_implicit_global_asset_job_def()
            .execute_in_process(instance=instance, asset_selection=[medic])
            .success
        )
        automation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=ticked)
        assert automation.get_num_requested(dg.AssetKey(["base", "contact"]))
    # Every object refreshed, as the other tests expect the deployment (and as the keepalive does):
    # a delete moves the `raw_docs` filters of those the sensor's run left alone.
    assert_all_passed(materialize(generated))


def test_a_refresh_with_nothing_changed_rebuilds_nothing_and_carries_the_checks(
    generated: Deployment,
) -> None:
    before = {table: row_versions(generated.pg_url, table) for table in ROLLUPS}
    first_versions = stored_versions(generated.pg_url)
    started = datetime.now(UTC)
    result = materialize(generated)
    assert_all_passed(result)
    assert {name: modes(result)[name] for name in ROLLUPS} == dict.fromkeys(ROLLUPS, "unchanged")
    assert {table: row_versions(generated.pg_url, table) for table in ROLLUPS} == before
    moved = {name for name, version in versions(result).items() if first_versions.get(name) != version}
    assert moved <= VOLATILE, moved
    found = carried(result)
    assert found[("useview_population", "persons_equal_contactview")]
    assert found[("document_metadata", "uuids_equal_live_raw_ids")]
    assert found[("useview_pregnancy", "registrations_equal_input")]
    # An incremental table's key and parity checks look at what the refresh changed: run, cheaply.
    assert not found[("contactview_contact", "unique_key")]
    not_carried = {
        key for key, was in found.items() if not was and key[0] not in VOLATILE and key[1] not in SCOPED
    }
    assert not not_carried, not_carried
    checked = {
        e.check_name: e.metadata["checked_at"].value
        for e in result.get_asset_check_evaluations()
        if e.asset_key.path[-1] == "useview_population"
    }
    assert max(checked.values()) < started.timestamp(), "a carried finding keeps the time it was made"


def check_metadata(result: dg.ExecuteInProcessResult, name: str, check: str) -> dict[str, object]:
    (found,) = (
        e.metadata
        for e in result.get_asset_check_evaluations()
        if (e.asset_key.path[-1], e.check_name) == (name, check)
    )
    return {key: value.value for key, value in found.items()}


def failing_references(pg_url: str) -> int:
    """data_record's reference check, its query run afresh over every report."""
    path = SQL_ROOT / "base/data_record.sql"
    obj = SqlObject.from_sql("data_record", path.read_text(encoding="utf-8"), layer="base", path=path)
    (check,) = (c for c in reconciliations(obj) if c.name == "contact_uuid_is_a_contact")
    with psycopg.connect(pg_url) as conn:
        return conn.execute(f"SELECT count(*) FROM ({check.sql}) AS q").fetchone()[0]  # noqa: S608


def chw_rows(pg_url: str) -> dict[str, set[str]]:
    """Each CHW's rows in useview_chw_activity, by the transaction that wrote them."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT chw_uuid, xmin::text FROM useview_chw_activity").fetchall()
    found: dict[str, set[str]] = {}
    for chw, xmin in rows:
        found.setdefault(chw, set()).add(xmin)
    return found


def test_a_new_report_moves_what_reads_it_and_the_rest_stays(generated: Deployment) -> None:
    before = stored_versions(generated.pg_url)
    population = row_versions(generated.pg_url, "useview_population")
    activity = chw_rows(generated.pg_url)
    two_weeks_ms = 14 * 24 * 3600 * 1000
    report = edit(
        generated,
        lambda d: d.get("type") == "data_record" and d.get("form") == "pregnancy",
        lambda d: d.update(reported_date=d["reported_date"] - two_weeks_ms),
    )
    result = materialize(generated)
    assert_all_passed(result)
    after = versions(result)
    moved = {name for name in after if after[name] != before.get(name)}
    assert {
        "data_record",
        "form_metadata",
        "formview_pregnancy",
        "useview_pregnancy",
        "useview_chw_activity",
    } <= moved
    assert not moved & {
        "contact",
        "contactview_contact",
        "contactview_hierarchy",
        "useview_population",
        "formview_delivery",
    }
    assert modes(result)["useview_population"] == "unchanged"
    # The report moved two weeks back: its CHW's rows are rewritten, every other CHW's kept.
    assert modes(result)["useview_chw_activity"] == "incremental"
    after_rows = chw_rows(generated.pg_url)
    chw = report["contact"]["_id"]
    assert after_rows[chw].isdisjoint(activity[chw])
    assert {c: x for c, x in after_rows.items() if c != chw} == {
        c: x for c, x in activity.items() if c != chw
    }
    assert row_versions(generated.pg_url, "useview_population") == population
    found = carried(result)
    assert found[("useview_population", "persons_equal_contactview")]
    assert not found[("useview_pregnancy", "registrations_equal_input")]
    # A whole-table reconciliation (`recheck: hourly`) rolls over an incremental refresh, or a
    # rollup's rewrite by groups; a reference check runs over the rows the refresh rewrote.
    assert found[("useview_chw_activity", "reports_equal_form_metadata")]
    assert found[("document_metadata", "uuids_equal_live_raw_ids")]
    assert not found[("document_metadata", "parity")]
    assert not found[("data_record", "contact_uuid_is_a_contact")]
    assert check_metadata(result, "data_record", "contact_uuid_is_a_contact")["scoped_to_keys"] == 1
    for name in ROLLUPS:
        assert differs_from_its_sql(generated.pg_url, name) == 0, name


def test_a_report_moved_to_an_unknown_submitter_or_deleted_rewrites_the_chws_it_left(
    generated: Deployment,
) -> None:
    """A report that leaves a CHW (another submitter, deleted) is no longer in that CHW's
    source rows, so no changed doc leads to the CHW: the groups whose counts no longer match
    form_metadata's are rewritten along, every other CHW's rows kept. A report without a
    submitter (a NULL group) rebuilds the rollup. The reference check, over the rewritten
    reports only between its hourly whole-table runs, finds the submitter that is no contact
    at once, keeps it while other reports change, and lets it go when the report goes."""
    is_assessment = lambda d: d.get("type") == "data_record" and d.get("form") == "assessment"  # noqa: E731
    activity = chw_rows(generated.pg_url)
    left = next(d for d in generated.docs() if is_assessment(d))["contact"]["_id"]  # the one edit picks
    moved = edit(generated, is_assessment, lambda d: d["contact"].update(_id="no-such-contact"))
    result = materialize(generated)
    assert_all_passed(result, warnings=False)
    assert modes(result)["useview_chw_activity"] == "incremental"
    assert differs_from_its_sql(generated.pg_url, "useview_chw_activity") == 0
    after = chw_rows(generated.pg_url)
    assert after[left].isdisjoint(activity[left]), "the CHW the report left: rewritten"
    assert {c: x for c, x in after.items() if c not in (left, "no-such-contact")} == {
        c: x for c, x in activity.items() if c != left
    }
    reference = check_metadata(result, "data_record", "contact_uuid_is_a_contact")
    assert (reference["count"], reference["scoped_to_keys"]) == (1, 1)
    assert moved["_id"] in reference["examples"][0]

    edit(
        generated,
        lambda d: is_assessment(d) and d["_id"] != moved["_id"],
        lambda d: d.update(reported_date=d["reported_date"] + 1),
    )
    result = materialize(generated)
    assert modes(result)["useview_chw_activity"] == "incremental"
    reference = check_metadata(result, "data_record", "contact_uuid_is_a_contact")
    assert (reference["count"], reference["scoped_to_keys"]) == (1, 1), "the other report's finding stands"
    assert moved["_id"] in reference["examples"][0]

    before = chw_rows(generated.pg_url)
    client = generated.client()
    assert "ok" in client.bulk_docs([{**client.get_doc(moved["_id"]), "_deleted": True}])[0]
    result = materialize(generated)
    assert_all_passed(result)
    assert modes(result)["useview_chw_activity"] == "incremental"
    assert differs_from_its_sql(generated.pg_url, "useview_chw_activity") == 0
    after = chw_rows(generated.pg_url)
    assert "no-such-contact" in before and "no-such-contact" not in after, "the group the report left"
    assert after == {c: x for c, x in before.items() if c != "no-such-contact"}
    reference = check_metadata(result, "data_record", "contact_uuid_is_a_contact")
    assert (reference["count"], reference["scoped_to_keys"]) == (0, 1)

    edit(generated, is_assessment, lambda d: d.pop("contact"))
    result = materialize(generated)
    assert modes(result)["useview_chw_activity"] == "rebuilt"
    assert differs_from_its_sql(generated.pg_url, "useview_chw_activity") == 0


def test_a_place_renamed_rewrites_the_chws_below_it_in_the_chw_rollup(generated: Deployment) -> None:
    """The hierarchy moved: the CHW rollup rewrites the rows of the CHWs whose place names it
    changed (its `rewrite_stale` query), not every CHW's."""
    activity = chw_rows(generated.pg_url)
    with psycopg.connect(generated.pg_url) as conn:
        (place,) = conn.execute(
            "SELECT health_center_uuid FROM useview_chw_activity WHERE health_center_uuid IS NOT NULL LIMIT 1"
        ).fetchone()
    renamed = edit(generated, lambda d: d["_id"] == place, lambda d: d.update(name=f"{d['name']} (renamed)"))
    result = materialize(generated)
    assert_all_passed(result)
    assert modes(result)["useview_chw_activity"] == "incremental"
    assert differs_from_its_sql(generated.pg_url, "useview_chw_activity") == 0
    with psycopg.connect(generated.pg_url) as conn:
        below = {
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT chw_uuid FROM useview_chw_activity WHERE health_center_name = %s",
                (renamed["name"],),
            )
        }
    after = chw_rows(generated.pg_url)
    assert below and all(after[chw].isdisjoint(activity[chw]) for chw in below)
    assert {c: x for c, x in after.items() if c not in below} == {
        c: x for c, x in activity.items() if c not in below
    }


def test_a_person_edited_rebuilds_the_population(generated: Deployment) -> None:
    population = row_versions(generated.pg_url, "useview_population")
    edit(
        generated,
        lambda d: d.get("type") == "person" and d.get("sex") == "female" and d.get("date_of_birth"),
        lambda d: d.update(sex="male"),
    )
    result = materialize(generated)
    assert_all_passed(result)
    assert modes(result)["useview_population"] == "rebuilt"
    assert not carried(result)[("useview_population", "persons_equal_contactview")]
    assert row_versions(generated.pg_url, "useview_population") != population
    assert differs_from_its_sql(generated.pg_url, "useview_population") == 0


def test_a_finding_is_carried_an_hour_at_most(generated: Deployment) -> None:
    age_findings(generated.pg_url)
    started = datetime.now(UTC)
    result = materialize(generated)
    assert_all_passed(result)
    assert not any(carried(result).values())
    with psycopg.connect(generated.pg_url) as conn:
        (oldest,) = conn.execute("SELECT min(checked_at) FROM cht_meta.check_findings").fetchone()
    assert oldest >= started, "every finding made again, and stored with its new time"


def test_on_the_real_cht_samples_a_report_edited_leaves_the_contacts_alone(
    couch_server, pg_url: str, monkeypatch: pytest.MonkeyPatch, shared_dir: Path
) -> None:
    deployment = new_empty_deployment(couch_server.url, pg_url, monkeypatch)
    root = shared_dir / "cht-sample-docs"
    deploy(
        deployment,
        {
            "": with_target_definitions(sample_docs(root, "medic/*.json", "medic/forms/*.json")),
            "-sentinel": sample_docs(root, "medic-sentinel/*.json"),
            "-users-meta": sample_docs(root, "medic-users-meta/*.json"),
        },
    )
    assert_all_passed(materialize(deployment), warnings=False)
    assert_raw_docs_cover_what_they_read(deployment.pg_url)
    before = stored_versions(deployment.pg_url)
    report = edit(
        deployment,
        lambda d: d.get("type") == "data_record" and d.get("form") and d.get("fields"),
        lambda d: d.update(reported_date=d["reported_date"] + 1000),
    )
    result = materialize(deployment)
    assert_all_passed(result, warnings=False)
    after = versions(result)
    moved = {name for name in after if after[name] != before.get(name)}
    assert {"data_record", "form_metadata", "useview_chw_activity"} <= moved, report["form"]
    assert not moved & {"contact", "contactview_contact", "contactview_hierarchy", "useview_population"}
    assert modes(result)["useview_population"] == "unchanged"
    for name in ROLLUPS:
        assert differs_from_its_sql(deployment.pg_url, name) == 0, name
    # The reference check looked at the edited report only, the other reports' findings kept
    # from the first run: the same count as the query over every report now.
    reference = check_metadata(result, "data_record", "contact_uuid_is_a_contact")
    assert reference["scoped_to_keys"] == 1
    assert reference["count"] == failing_references(deployment.pg_url)
    # The same through the update_seq sensor, on a deployment that lacks the maternal forms.
    monkeypatch.setenv("KEEPALIVE_MINUTES", "0")
    selected = assert_the_sensor_run_suffices(
        code_location(),
        deployment,
        lambda: edit(deployment, lambda d: d["_id"] == report["_id"], lambda d: d.update(reported_date=1)),
        versions_too=True,
    )
    assert "form_metadata" in selected and "contact" not in selected, selected


def test_on_a_new_warehouse_the_filtered_function_moves_with_the_settings_doc_only(pg_url: str) -> None:
    """A first refresh (no state yet) finds its docs among all the raw docs; after it, a report
    leaves the language function's version alone and the settings doc moves it."""
    catalog = build_catalog([])

    def version_now(conn: psycopg.Connection) -> str:
        _, result = refresh_entry(conn, catalog, LANGUAGE_FUNCTION)
        return result.data_version

    def write(conn: psycopg.Connection, doc_id: str, doc: dict) -> None:
        conn.execute(
            "INSERT INTO raw.couchdb_docs AS d (source, _id, _rev, doc) VALUES ('medic', %s, '1-a', %s) "
            "ON CONFLICT (source, _id) DO UPDATE SET doc = excluded.doc, "
            "change_seq = nextval('raw.couchdb_change_seq')",
            (doc_id, Jsonb({"_id": doc_id, **doc})),
        )

    with psycopg.connect(pg_url, autocommit=True) as conn:
        ensure_meta_schema(conn)
        ensure_raw_schema(conn, ["medic"])
        write(conn, "settings", {"settings": {"locale": "fr"}})
        write(conn, "report-0", {"type": "data_record", "form": "delivery"})
        settled = version_now(conn)
        assert version_now(conn) == settled
        write(conn, "report-1", {"type": "data_record", "form": "pregnancy"})
        assert version_now(conn) == settled, "a report is not what it reads"
        write(conn, "settings", {"settings": {"locale": "sw"}})
        assert version_now(conn) != settled
        (language,) = conn.execute(f"SELECT {LANGUAGE_FUNCTION}()").fetchone()
        assert language == "sw"
