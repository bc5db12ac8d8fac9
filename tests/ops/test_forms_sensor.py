"""The `form_definitions` sensor, evaluated as the daemon would, against a real PostgreSQL and a
loopback webserver that records the reload it is asked for."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import dagster as dg
import psycopg
import pytest

from cht_assets.defs.forms import forms_sensor
from cht_assets.defs.resources import PostgresResource
from cht_assets.replica.schema import ensure_raw_schema
from cht_assets.settings import load_ops_settings
from cht_assets.warehouse.catalog import build_catalog
from tests.ops.receivers import Inbox
from tests.support.dagster import dagster_instance
from tests.support.http import send_json, serve
from tests.unit.test_catalog import demo_forms


@pytest.fixture
def webserver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """Records each GraphQL request's variables; answers like Dagster's webserver."""
    inbox = Inbox()

    def handle(handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length") or 0)))
        inbox.add((handler.path, body["variables"], "reloadRepositoryLocation" in body["query"]))
        send_json(
            handler, 200, {"data": {"reloadRepositoryLocation": {"__typename": "WorkspaceLocationEntry"}}}
        )

    with serve(handle) as url:
        monkeypatch.setenv("DAGSTER_WEBSERVER_URL", url)
        yield inbox


def store_forms(pg_url: str, forms: list) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        ensure_raw_schema(conn, ["medic"])
        conn.execute("DELETE FROM raw.couchdb_form_xml")
        for form in forms:
            conn.execute(
                "INSERT INTO raw.couchdb_form_xml VALUES (%s, %s, '1-a', 'xml', %s)",
                (form.source, form.doc_id, form.xml),
            )


def tick(sensor: dg.SensorDefinition, pg_url: str, instance: dg.DagsterInstance, cursor: str | None):
    defs = dg.Definitions(sensors=[sensor], resources={"postgres": PostgresResource(url=pg_url)})
    with dg.build_sensor_context(
        instance=instance,
        definitions=defs,
        cursor=cursor,
        resources={"postgres": PostgresResource(url=pg_url)},
    ) as context:
        return sensor.evaluate_tick(context)


def test_changed_forms_ask_the_webserver_for_one_reload(pg_url: str, webserver: Inbox) -> None:
    forms = demo_forms()
    loaded = build_catalog(forms[:-1])  # the definitions lack the last form
    sensor = forms_sensor(loaded, load_ops_settings())
    with dagster_instance() as instance:
        # Before the first sync the warehouse has no forms: nothing to compare, no reload.
        store_forms(pg_url, [])
        assert tick(sensor, pg_url, instance, None).skip_message == "no forms synced yet"

        store_forms(pg_url, forms)
        first = tick(sensor, pg_url, instance, None)
        assert "reload" in first.skip_message
        request = webserver.wait_for(lambda items: items, 10, "a reload request")[0]
        assert request == ("/graphql", {"name": "cht_assets"}, True)

        # Asked once: the next tick waits for the reload instead of asking again.
        again = tick(sensor, pg_url, instance, first.cursor)
        assert "waiting for it" in again.skip_message
        threading.Event().wait(1.5)  # the thread that would post waits 1 s first
        assert len(webserver.snapshot()) == 1

    # The reloaded location was built from these forms: nothing more to do.
    current = forms_sensor(build_catalog(forms), load_ops_settings())
    with dagster_instance() as instance:
        assert "match" in tick(current, pg_url, instance, first.cursor).skip_message
