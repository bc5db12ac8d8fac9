"""The Dagster replication assets against real servers: materialize, metadata, logs, secrets."""

from __future__ import annotations

import dagster as dg
import pytest

from cht_assets.couch.client import CouchClient
from cht_assets.defs.raw import build_raw_assets, raw_asset_key
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from tests.support.compare import assert_replica_equals
from tests.support.dagster import dagster_instance


@pytest.fixture
def databases(couch_server, monkeypatch: pytest.MonkeyPatch):
    names = ["medic", "medic-sentinel"]
    clients = [CouchClient(couch_server.url, name) for name in names]
    for client in clients:
        client.create_db()
    monkeypatch.setenv("COUCHDB_DBS", ",".join(names))
    monkeypatch.setenv("COUCHDB_BATCH_SIZE", "50")
    yield clients
    for client in clients:
        client.delete_db()


def test_materialize_all_replicates_each_database(pg_url: str, couch_server, databases) -> None:
    medic, sentinel = databases
    medic.bulk_docs([{"_id": f"r{i}", "type": "data_record", "form": "pnc"} for i in range(120)])
    sentinel.bulk_docs([{"_id": f"r{i}-info", "type": "info", "doc_id": f"r{i}"} for i in range(30)])
    assets = build_raw_assets()
    resources = {"couchdb": CouchDBResource(url=couch_server.url), "postgres": PostgresResource(url=pg_url)}
    with dagster_instance() as instance:
        result = dg.materialize(assets, resources=resources, instance=instance)
        assert result.success
        events = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
        medic_meta = events[raw_asset_key("medic")]
        assert medic_meta["dagster/row_count"].value == 120
        assert medic_meta["changes_this_run"].value == 120
        assert medic_meta["dagster/table_name"].value == "raw.couchdb_docs"
        assert medic_meta["last_seq"].value == "120" and medic_meta["pending"].value == 0
        assert events[raw_asset_key("medic-sentinel")]["dagster/row_count"].value == 30
        logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
        assert any("medic: 120 changes" in line and "docs/s" in line for line in logs)

        again = dg.materialize(assets, resources=resources, instance=instance)
        medic_again = {
            e.asset_key: e.materialization.metadata for e in again.get_asset_materialization_events()
        }
        assert medic_again[raw_asset_key("medic")]["changes_this_run"].value == 0
    assert_replica_equals(medic, pg_url, "medic")
    assert_replica_equals(sentinel, pg_url, "medic-sentinel")


def test_graph_shape(databases) -> None:
    from cht_assets.defs.resources import resources

    defs = dg.Definitions(assets=build_raw_assets(), resources=resources())
    dg.Definitions.validate_loadable(defs)
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    assert specs[dg.AssetKey(["couchdb", "medic"])].group_name == "couchdb"
    raw = specs[raw_asset_key("medic_sentinel")]
    assert raw.group_name == "raw" and {"postgres", "couchdb"} <= set(raw.kinds)
    assert {dep.asset_key for dep in raw.deps} == {dg.AssetKey(["couchdb", "medic_sentinel"])}


def test_credentials_never_reach_logs_or_metadata(pg_url: str, couch_server, databases, monkeypatch) -> None:
    secret = "Pa55-w0rd-xyz"
    monkeypatch.setenv("COUCHDB_URL", couch_server.url.replace("http://", f"http://intruder:{secret}@"))
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    with dagster_instance() as instance:
        result = dg.materialize(
            build_raw_assets(),
            resources={"couchdb": CouchDBResource(), "postgres": PostgresResource()},
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        text = "\n".join(str(record) for record in instance.all_logs(result.run_id))
    assert "401" in text and "'medic'" in text
    assert secret not in text


def test_a_database_couchdb_lacks_is_reported_not_failed(
    pg_url: str, couch_server, databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COUCHDB_DBS names a database this CouchDB does not have (a deployment without
    medic-users-meta, a typo): its replica materializes empty, saying why; the others sync."""
    monkeypatch.setenv("COUCHDB_DBS", "medic,medic-nowhere")
    databases[0].bulk_docs([{"_id": "r1", "type": "data_record", "form": "pnc"}])
    resources = {"couchdb": CouchDBResource(url=couch_server.url), "postgres": PostgresResource(url=pg_url)}
    with dagster_instance() as instance:
        result = dg.materialize(build_raw_assets(), resources=resources, instance=instance)
        events = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
        logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
    missing = events[raw_asset_key("medic-nowhere")]
    assert "medic-nowhere" in missing["absent"].value and "HTTP 404" in missing["absent"].value
    assert missing["dagster/row_count"].value == 0 and missing["changes_this_run"].value == 0
    assert "absent" not in events[raw_asset_key("medic")]
    assert events[raw_asset_key("medic")]["dagster/row_count"].value == 1
    assert any("medic-nowhere: nothing replicated" in line for line in logs)
