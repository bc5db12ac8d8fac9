"""A small Superset REST client: one `requests` session, JWT login, CSRF token, JSON errors.

Superset needs, for every write, the JWT *and* a CSRF token bound to the session cookie that
`GET /api/v1/security/csrf_token/` sets, so one session holds both. `Accept: application/json` makes
command errors come back as JSON rather than HTML pages. Collection routes need their trailing
slash (`/api/v1/dataset/`); without it Superset answers 308 and the redirected POST loses its
CSRF context. Item routes (`/api/v1/dataset/7`) have none.

Errors carry Superset's own message, never the password.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import requests

JsonObject = dict[str, Any]
PAGE_SIZE = 100


class SupersetAPIError(RuntimeError):
    """A Superset request failed; `status` is the HTTP status (0 when there was no answer)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"Superset {method} {path} -> {status}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message


_RISON_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def rison(value: object) -> str:
    """Encode `value` as Rison (Superset's `?q=` syntax); strings are quoted unless plain words."""
    if value is None:
        return "!n"
    if value is True:
        return "!t"
    if value is False:
        return "!f"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        if _RISON_ID.match(value) and value not in ("true", "false", "null"):
            return value
        return "'" + value.replace("!", "!!").replace("'", "!'") + "'"
    if isinstance(value, Mapping):
        return "(" + ",".join(f"{rison(str(k))}:{rison(v)}" for k, v in value.items()) + ")"
    if isinstance(value, list | tuple):
        return "!(" + ",".join(rison(item) for item in value) + ")"
    raise TypeError(f"cannot encode {type(value).__name__} as Rison")


def error_text(response: requests.Response) -> str:
    """Superset's message from an error response (JSON `message`/`errors`/`msg`, else the text)."""
    try:
        body = response.json()
    except ValueError:
        text = re.sub(r"<[^>]+>", " ", response.text)
        return " ".join(text.split())[:500] or response.reason
    if isinstance(body, dict):
        if body.get("errors"):
            messages = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in body["errors"]]
            return "; ".join(messages)[:2000]
        for key in ("message", "msg", "error"):
            if body.get(key):
                value = body[key]
                return (value if isinstance(value, str) else json.dumps(value))[:2000]
    return json.dumps(body)[:2000]


def needs_login(response: requests.Response) -> bool:
    """An expired or unusable session: 401, a JWT error (flask-jwt-extended answers 422 with a
    `msg`, e.g. after a restart with another SECRET_KEY), or an expired CSRF token."""
    if response.status_code == 401:
        return True
    if response.status_code == 400:
        return "CSRF" in response.text
    if response.status_code == 422:
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and "msg" in body and "message" not in body
    return False


class SupersetClient:
    """An authenticated session against one Superset; logs in on first use and again on 401."""

    def __init__(
        self, url: str, username: str, password: str, *, timeout: float = 120.0, provider: str = "db"
    ) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self._password = password
        self._provider = provider
        self.timeout = timeout
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"SupersetClient({self.url!r}, user={self.username!r})"

    # --- session ---------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def login(self) -> None:
        """A fresh session: JWT access token, then the CSRF token bound to the session cookie."""
        self.close()
        session = requests.Session()
        session.headers.update({"Accept": "application/json", "Referer": self.url})
        body = {"username": self.username, "password": self._password, "provider": self._provider}
        response = self._send(session, "POST", "/api/v1/security/login", json={**body, "refresh": True})
        if response.status_code != 200:
            raise SupersetAPIError(
                "POST",
                "/api/v1/security/login",
                response.status_code,
                f"login as {self.username!r} failed: {self._redact(error_text(response))}",
            )
        session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        csrf = self._send(session, "GET", "/api/v1/security/csrf_token/")
        if csrf.status_code != 200:
            raise SupersetAPIError("GET", "/api/v1/security/csrf_token/", csrf.status_code, error_text(csrf))
        session.headers["X-CSRFToken"] = csrf.json()["result"]
        self._session = session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> SupersetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, session: requests.Session, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return session.request(
                method, self.url + path, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except requests.RequestException as error:
            raise SupersetAPIError(method, path, 0, self._redact(str(error))) from None

    # --- requests --------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request; log in again once when the session is no longer good; raise on >= 300."""
        if self._session is None:
            self.login()
        assert self._session is not None
        response = self._send(self._session, method, path, **kwargs)
        if needs_login(response):
            self.login()
            response = self._send(self._session, method, path, **kwargs)
        if response.status_code >= 300:
            raise SupersetAPIError(method, path, response.status_code, self._redact(error_text(response)))
        return response

    def get(self, path: str, *, q: object | None = None) -> Any:
        params = {"q": rison(q)} if q is not None else None
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: object | None = None) -> Any:
        return self.request("POST", path, json=body).json()

    def put(self, path: str, body: object | None = None) -> Any:
        return self.request("PUT", path, json=body).json()

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path).json()

    # --- collections -----------------------------------------------------------------------

    def list_all(self, collection: str, *, filters: list[JsonObject] | None = None) -> Iterator[JsonObject]:
        """Every item of `/api/v1/<collection>/`, page by page; `filters` as Superset's
        `[{"col": ..., "opr": "eq", "value": ...}]`."""
        page = 0
        while True:
            query: JsonObject = {"page": page, "page_size": PAGE_SIZE}
            if filters:
                query["filters"] = filters
            body = self.get(f"/api/v1/{collection}/", q=query)
            items = body.get("result", [])
            yield from items
            if len(items) < PAGE_SIZE:
                return
            page += 1

    def find(self, collection: str, **equal: object) -> list[JsonObject]:
        """Items whose columns equal the given values (`find("dashboard", slug="x")`)."""
        filters = [{"col": col, "opr": "eq", "value": value} for col, value in equal.items()]
        return list(self.list_all(collection, filters=filters))

    def import_assets(
        self, bundle: bytes, *, passwords: Mapping[str, str] | None = None, sparse: bool = False
    ) -> None:
        """POST an assets bundle (zip) to `/api/v1/assets/import/`; Superset overwrites by UUID.

        `sparse` lets the bundle refer to databases and datasets already in Superset by UUID."""
        data = {"sparse": "true" if sparse else "false"}
        if passwords:
            data["passwords"] = json.dumps(dict(passwords))
        files = {"bundle": ("bundle.zip", bundle, "application/zip")}
        try:
            self.request("POST", "/api/v1/assets/import/", data=data, files=files)
        except SupersetAPIError as error:
            message = error.message
            for secret in (passwords or {}).values():
                message = message.replace(secret, "***") if secret else message
            raise SupersetAPIError(error.method, error.path, error.status, message) from None
