"""The Superset server and the REST client against it: install is idempotent, CSRF stays on,
the client re-logs in, and errors carry Superset's message but never the password."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from cht_assets.bi.client import SupersetAPIError, SupersetClient
from cht_assets.servers.superset import admin_credentials, install_superset, is_bootstrapped, is_installed
from cht_assets.servers.superset import main as superset_cli

pytestmark = pytest.mark.superset


def test_install_is_skipped_when_up_to_date(superset_venv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert is_installed(superset_venv)
    started = time.monotonic()
    assert install_superset(superset_venv) is False
    assert superset_cli(["install", "--venv", str(superset_venv)]) == 0
    assert time.monotonic() - started < 5
    assert "already up to date" in capsys.readouterr().out


def test_health_and_login(admin: SupersetClient) -> None:
    assert requests.get(f"{admin.url}/health", timeout=10).text == "OK"
    me = admin.get("/api/v1/me/")["result"]
    assert me["username"] == admin.username


def test_writes_need_the_csrf_token(admin: SupersetClient) -> None:
    admin.login()
    token = admin._session.headers["Authorization"]  # noqa: SLF001 - a bare JWT, without the CSRF pair
    answer = requests.post(
        f"{admin.url}/api/v1/dashboard/",
        json={"dashboard_title": "csrf-probe"},
        headers={"Authorization": token, "Accept": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400 and "CSRF token is missing" in answer.text
    assert admin.find("dashboard", dashboard_title="csrf-probe") == []
    # The client's own session carries the token, so the same write goes through.
    created = admin.post("/api/v1/dashboard/", {"dashboard_title": "csrf-probe"})
    admin.delete(f"/api/v1/dashboard/{created['id']}")


@pytest.mark.parametrize("token", ["not-a-jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"])
def test_client_logs_in_again_when_its_token_is_refused(admin: SupersetClient, token: str) -> None:
    admin.login()
    admin._session.headers["Authorization"] = f"Bearer {token}"  # noqa: SLF001 - an unusable JWT
    assert admin.get("/api/v1/me/")["result"]["username"] == admin.username
    admin.login()
    admin._session.headers["X-CSRFToken"] = "stale"  # noqa: SLF001 - an expired CSRF token
    created = admin.post("/api/v1/dashboard/", {"dashboard_title": "relogin-probe"})
    admin.delete(f"/api/v1/dashboard/{created['id']}")


def test_errors_carry_supersets_message_not_the_password(admin: SupersetClient) -> None:
    secret = "s3cret-password-that-must-not-leak"
    bad = SupersetClient(admin.url, "admin", secret)
    with pytest.raises(SupersetAPIError) as error:
        bad.get("/api/v1/me/")
    assert error.value.status == 401 and secret not in str(error.value)
    with pytest.raises(SupersetAPIError) as missing:
        admin.get("/api/v1/dashboard/999999")
    assert missing.value.status == 404 and "Not found" in str(missing.value)
    with pytest.raises(SupersetAPIError) as duplicate:
        admin.post("/api/v1/security/roles/", {"name": "Admin"})
    assert duplicate.value.status >= 400 and duplicate.value.message


def test_the_metadata_db_is_bootstrapped_once(superset_server, superset_metadata_url: str) -> None:
    """A restart on the same metadata DB skips `db upgrade` / admin / `init`."""
    assert is_bootstrapped(superset_metadata_url, admin_credentials()[0])
    assert not is_bootstrapped(superset_metadata_url, "nobody-by-this-name")
