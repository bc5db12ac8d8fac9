"""The refresh engine without Dagster (`python -m cht_assets.replica`, then `python -m
cht_assets.warehouse`) on a deployment that lacks forms the demo has, and after they appear."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.replica.__main__ import main as replicate_main
from cht_assets.warehouse.__main__ import main as refresh_main
from tests.integration.pipeline import Deployment, new_deployment

SEED, HOUSEHOLDS = 3, 30
ABSENT = ("form:pregnancy", "form:delivery")


def count(pg_url: str, sql: str) -> int:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(sql).fetchone()[0]


def exists(pg_url: str, relation: str) -> bool:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()[0]


def reports_of(deployment: Deployment, form: str) -> int:
    return sum(1 for doc in deployment.docs() if doc.get("type") == "data_record" and doc.get("form") == form)


@pytest.fixture
def lacking(
    couch_server, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Deployment, list[dict[str, Any]]]:
    """The demo deployment with its pregnancy and delivery form docs deleted (their reports stay);
    returns the deleted form docs, attachments inline, to bring them back."""
    deployment = new_deployment(couch_server.url, pg_url, monkeypatch)
    generated = generate(SEED, HOUSEHOLDS)
    load_deployment(couch_clients(couch_server.url), generated, db_prefix=deployment.prefix)
    forms = [doc for doc in generated["medic"] if doc["_id"] in ABSENT]
    client = deployment.client()
    revs = {
        row["id"]: row["value"]["rev"]
        for row in client._request("POST", "/_all_docs", json={"keys": list(ABSENT)}).json()["rows"]
    }
    client.bulk_docs([{"_id": doc_id, "_rev": rev, "_deleted": True} for doc_id, rev in revs.items()])
    return deployment, forms


def sync_and_refresh(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    assert replicate_main([]) == 0
    code = refresh_main([])
    return code, capsys.readouterr().out


def test_absent_forms_wait_then_build_when_they_appear(lacking, capsys: pytest.CaptureFixture[str]) -> None:
    deployment, forms = lacking
    code, out = sync_and_refresh(capsys)
    assert code == 0, out
    assert "useview_pregnancy: not built, waiting for formview_delivery, formview_pregnancy" in out
    assert not exists(deployment.pg_url, "useview_pregnancy")
    for form in ("pnc", "assessment", "immunization"):
        assert reports_of(deployment, form) > 0
        assert count(deployment.pg_url, f"SELECT count(*) FROM formview_{form}") == reports_of(
            deployment, form
        )
    assert count(deployment.pg_url, "SELECT count(*) FROM useview_chw_activity") > 0

    # The forms arrive: the next sync and refresh build their formviews and the use view.
    deployment.client().bulk_docs(
        [{key: value for key, value in doc.items() if key != "_rev"} for doc in forms]
    )
    code, out = sync_and_refresh(capsys)
    assert code == 0, out
    for form in ("pregnancy", "delivery"):
        assert reports_of(deployment, form) > 0
        assert count(deployment.pg_url, f"SELECT count(*) FROM formview_{form}") == reports_of(
            deployment, form
        )
    assert "useview_pregnancy: not built" not in out and "useview_pregnancy: FAILED" not in out, out
    assert count(deployment.pg_url, "SELECT count(*) FROM useview_pregnancy") == count(
        deployment.pg_url, "SELECT count(DISTINCT uuid) FROM formview_pregnancy"
    )

    # Nothing changed: every object is left as it is.
    code, out = sync_and_refresh(capsys)
    assert code == 0 and "FAILED" not in out and "created" not in out, out


def test_select_refreshes_only_what_is_named(lacking, capsys: pytest.CaptureFixture[str]) -> None:
    deployment, _ = lacking
    assert replicate_main([]) == 0
    # Alone, the view lacks the function it calls: a failure, said and counted in the exit code.
    assert refresh_main(["--select", "contactview_metadata"]) == 1
    assert "contactview_metadata: FAILED UndefinedFunction" in capsys.readouterr().out
    selected = ["--select", "cht_epoch_ms_to_timestamptz", "--select", "contactview_metadata"]
    assert refresh_main(selected) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("cht_epoch_ms_to_timestamptz: ") and len(out.splitlines()) == 2, out
    assert "contactview_metadata: created" in out
    assert count(deployment.pg_url, "SELECT count(*) FROM contactview_metadata") == sum(
        1
        for doc in deployment.docs()
        if doc.get("type") in {"person", "clinic", "health_center", "district_hospital"}
    )
    assert not exists(deployment.pg_url, "useview_chw_activity")
