"""Bad input: every kind of broken doc and form in one CouchDB, synced and refreshed through
Dagster. Nothing crashes or hangs, and every problem is counted by a check, with examples."""

from __future__ import annotations

import base64
import time
from typing import Any

import psycopg
import pytest

from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from tests.integration.pipeline import Deployment, materialize_all, new_deployment
from tests.support.payloads import ENTITY_BOMB_DOCTYPE

SEED, HOUSEHOLDS = 7, 4
DEPTH = 1000
BIG_BYTES = 10 * 1024 * 1024
BOMB = (
    b'<?xml version="1.0"?>\n'
    + ENTITY_BOMB_DOCTYPE.encode()
    + b"""<h:html xmlns:h="http://www.w3.org/1999/xhtml" xmlns="http://www.w3.org/2002/xforms">
<h:head><h:title>&lol9;</h:title><model><instance><bomb id="bomb"><q/></bomb></instance></model></h:head>
<h:body/></h:html>"""
)
MALFORMED = b'<h:html xmlns:h="http://www.w3.org/1999/xhtml"><h:head><model><instance><broken id="broken">'


def form(internal_id: str, xml: bytes) -> dict[str, Any]:
    return {
        "_id": f"form:{internal_id}",
        "type": "form",
        "internalId": internal_id,
        "_attachments": {"xml": {"content_type": "application/xml", "data": base64.b64encode(xml).decode()}},
    }


def deep_json(depth: int) -> str:
    """`depth` nested objects as JSON text (Python's json would hit its recursion limit)."""
    return '{"n":' * (depth - 1) + '{"leaf":"bottom"}' + "}" * (depth - 1)


def hostile_docs(place: str, chw: str) -> list[dict[str, Any]]:
    """Broken docs beside a real world: `place` is a health_center and `chw` a person of it."""
    lineage = {"_id": place}
    pregnancy = {"type": "data_record", "form": "pregnancy", "contact": {"_id": chw, "parent": lineage}}

    def report(doc_id: str, **fields: Any) -> dict[str, Any]:
        return {**pregnancy, "_id": doc_id, "reported_date": 1_750_000_000_000, **fields}

    return [
        # Characters jsonb cannot hold.
        {"_id": "bad-nul", "type": "person", "name": "nul\u0000name", "parent": lineage, "k\u0000": 1},
        # Size and depth.
        report("bad-big", fields={"note": "x" * BIG_BYTES}),
        # Wrong types where an object is expected.
        {"_id": "bad-parent-number", "type": "person", "name": "p5", "parent": 5},
        {"_id": "bad-parent-array", "type": "person", "name": "pa", "parent": [place]},
        {"_id": "bad-parent-null", "type": "person", "name": "pn", "parent": None},
        {**report("bad-contact-string"), "contact": "x"},
        report("bad-fields-array", fields=[]),
        report("bad-fields-null", fields=None),
        report("bad-fields-number", fields=42),
        # Dates that are not dates.
        report("bad-dates", fields={"lmp_date_8601": "2026-13-45", "edd_8601": "yesterday"}),
        {"_id": "bad-dob", "type": "person", "name": "dob", "parent": lineage, "date_of_birth": "yesterday"},
        report("bad-reported-string", reported_date="yesterday", fields={"lmp_date_8601": "2025-01-01"}),
        report("ok-reported-numeric-string", reported_date="1750000000000", fields={}),
        {**report("bad-reported-object"), "reported_date": {"$date": 1}},
        # Hierarchy problems.
        {"_id": "bad-orphan", "type": "person", "name": "orphan"},
        {"_id": "bad-dangling", "type": "person", "name": "dangling", "parent": {"_id": "no-such-place"}},
        {
            "_id": "bad-cycle-a",
            "type": "clinic",
            "name": "A",
            "parent": {"_id": "bad-cycle-b", "parent": {"_id": "bad-cycle-a"}},
        },
        {
            "_id": "bad-cycle-b",
            "type": "clinic",
            "name": "B",
            "parent": {"_id": "bad-cycle-a", "parent": {"_id": "bad-cycle-b"}},
        },
        # Reports of forms nobody defined, and forms nobody can read.
        report("bad-unknown-form", form="no_such_form", fields={"q": "1"}),
        form("broken", MALFORMED),
        form("bomb", BOMB),
    ]


def put_json(deployment: Deployment, doc_id: str, body: str) -> None:
    """A doc written as JSON text: a lone surrogate escape, or nesting Python's json refuses."""
    deployment.client()._request(
        "PUT", f"/{doc_id}", data=body.encode(), headers={"Content-Type": "application/json"}
    )


def put_awkward(deployment: Deployment, place: str, chw: str) -> None:
    put_json(
        deployment,
        "bad-surrogate",
        f'{{"type": "person", "name": "lone \\ud800 surrogate", "parent": {{"_id": "{place}"}}}}',
    )
    put_json(
        deployment,
        "bad-deep",
        '{"type": "data_record", "form": "pregnancy", "reported_date": 1750000000000, '
        f'"contact": {{"_id": "{chw}"}}, "fields": {deep_json(DEPTH)}}}',
    )


@pytest.fixture
def deployment(couch_server, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    deployment = new_deployment(couch_server.url, pg_url, monkeypatch)
    load_deployment(couch_clients(couch_server.url), generate(SEED, HOUSEHOLDS), db_prefix=deployment.prefix)
    docs = deployment.docs()
    place = next(d["_id"] for d in docs if d.get("type") == "health_center")
    chw = next(d["_id"] for d in docs if d.get("type") == "person" and d["parent"]["_id"] == place)
    client = deployment.client()
    for doc in hostile_docs(place, chw):
        client.bulk_docs([doc])  # one at a time: the 10 MB doc alone
    put_awkward(deployment, place, chw)
    return deployment


def checks_of(result) -> dict[tuple[str, str], Any]:
    return {(c.asset_key.path[-1], c.check_name): c for c in result.get_asset_check_evaluations()}


def check_metadata(check) -> dict[str, Any]:
    return {key: value.value for key, value in check.metadata.items()}


def examples(check) -> str:
    return str(check_metadata(check).get("examples"))


def test_bad_input_is_synced_refreshed_and_counted(deployment: Deployment) -> None:
    started = time.monotonic()
    raw_result, result = materialize_all(deployment)
    seconds = time.monotonic() - started
    assert result.success
    checks = checks_of(result)
    failed_blocking = [key for key, c in checks.items() if not c.passed and c.severity.value == "ERROR"]
    assert failed_blocking == []

    with psycopg.connect(deployment.pg_url) as conn:
        stored = dict(
            conn.execute(
                "SELECT _id, doc FROM raw.couchdb_docs WHERE source = %s AND _id LIKE 'bad-%%' "
                "AND _id NOT IN ('bad-deep', 'bad-big')",  # json.loads: too deep for Python
                (deployment.prefix,),
            ).fetchall()
        )
        big = conn.execute(
            "SELECT length(doc #>> '{fields,note}') FROM raw.couchdb_docs WHERE _id = 'bad-big'"
        ).fetchone()[0]
        depth = (
            conn.execute(
                "SELECT length(doc::text) - length(replace(doc::text, '\"n\"', '')) FROM raw.couchdb_docs "
                "WHERE _id = 'bad-deep'"
            ).fetchone()[0]
            // 3
        )
        reports = dict(
            conn.execute("SELECT uuid, formname FROM form_metadata WHERE uuid LIKE 'bad-%'").fetchall()
        )
        pregnancy = dict(
            conn.execute(
                "SELECT uuid, lmp_date_8601 FROM formview_pregnancy WHERE uuid LIKE 'bad-%'"
            ).fetchall()
        )
        contacts = dict(
            conn.execute(
                "SELECT uuid, parent_uuid FROM contactview_contact WHERE uuid LIKE 'bad-%'"
            ).fetchall()
        )

    # Stored, every one: NUL replaced, surrogate replaced, 10 MB and 1 000 levels intact.
    assert stored["bad-nul"]["name"] == "nul\ufffdname" and stored["bad-nul"]["k\ufffd"] == 1
    assert stored["bad-surrogate"]["name"] == "lone \ufffd surrogate" and stored["bad-surrogate"][
        "name"
    ].startswith("lone ")
    assert big == BIG_BYTES
    assert depth == DEPTH - 1
    unstorable = checks_of(raw_result)[(deployment.prefix, "unstorable_characters")]
    assert not unstorable.passed and check_metadata(unstorable)["count"] >= 1
    assert "bad-nul" in examples(unstorable) and "bad-surrogate" in examples(unstorable)

    # Views hold what can be read; the rest is NULL, never an error.
    assert reports["bad-unknown-form"] == "no_such_form" and reports["bad-contact-string"] == "pregnancy"
    assert {"bad-fields-array", "bad-fields-null", "bad-fields-number", "bad-deep", "bad-big"} <= set(
        pregnancy
    )
    assert pregnancy["bad-dates"] is None
    assert contacts["bad-parent-number"] is None and contacts["bad-orphan"] is None
    assert contacts["bad-dangling"] == "no-such-place"

    # Counted, with examples.
    cast = checks[("formview_pregnancy", "cast_failures")]
    assert not cast.passed and "2026-13-45" in examples(cast) and "yesterday" in examples(cast)
    assert check_metadata(cast)["reported"] >= 1  # reported_date "yesterday" and {"$date": 1}
    forms = checks[("form_metadata", "xforms_parse")]
    assert check_metadata(forms)["count"] == 2
    assert "form:broken" in examples(forms) and "form:bomb" in examples(forms)
    dangling = checks[("contactview_contact", "references_parent_uuid")]
    assert "no-such-place" in examples(dangling)

    shapes = check_metadata(checks[("contactview_contact", "doc_problems")])
    assert shapes["parent not an object"] == 3, shapes  # 5, [..], null
    assert shapes["contact without a parent"] == 1 and "bad-orphan" in str(shapes["examples"])
    assert shapes["parent cycle"] == 2
    assert shapes["date_of_birth not a date"] == 1
    report_shapes = check_metadata(checks[("form_metadata", "doc_problems")])
    assert report_shapes["contact not an object"] == 1
    assert report_shapes["fields not an object"] == 3
    assert report_shapes["reported_date not epoch ms"] == 2
    assert report_shapes["form without definition"] >= 1 and "no_such_form" in str(report_shapes["examples"])
    assert seconds < 120
    print(
        f"\nbad input: materialized in {seconds:.1f}s; contact problems {shapes}; report problems {report_shapes}"
    )
