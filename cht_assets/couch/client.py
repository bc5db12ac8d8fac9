"""A small CouchDB client over one `requests.Session`.

Credentials are taken out of the server URL and sent as basic auth, so no URL this client
stores, logs or puts into an error message ever holds them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import ijson
import requests
import urllib3

from cht_assets.couch.errors import CouchAuthError, CouchError, CouchUnavailable

CHUNK_BYTES = 256 * 1024
PYTHON_JSON = ijson.get_backend("python")
# The top-level keys after "results" (last_seq, pending) fit easily in this many trailing bytes,
# even with CouchDB 3's long opaque seqs.
TAIL_BYTES = 2 * CHUNK_BYTES
# Wall-clock limit on one `_changes` page, headers to last byte. The read timeout bounds each
# socket read only: a server (or proxy) that drips a few bytes within every timeout would hold
# a sync forever. Far above any real page (5 000 CHT docs arrive in seconds).
PAGE_TIMEOUT = 600.0


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """`http://u:p@host:5984/` -> (`http://host:5984`, ('u', 'p'))."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    bare = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    if parts.username is None:
        return bare, None
    return bare, (unquote(parts.username), unquote(parts.password or ""))


def parse_rows(chunks: Iterable[bytes], db: str, *, exact: bool = False) -> Iterator[dict[str, Any]]:
    """The rows of a `_changes` body given in chunks, parsed as they arrive. The C parser turns
    a lone UTF-16 surrogate escape into '?'; `exact` uses ijson's pure-Python parser, slower,
    which keeps it, so the caller can replace it visibly and count it."""
    parsed = ijson.sendable_list()
    backend = PYTHON_JSON if exact else ijson
    parser = backend.items_coro(parsed, "results.item", use_float=True)
    try:
        for chunk in chunks:
            parser.send(chunk)
            yield from parsed
            del parsed[:]
        parser.close()
    except ijson.JSONError as exc:
        raise CouchUnavailable(f"CouchDB database '{db}': truncated or invalid _changes body") from exc
    yield from parsed


@dataclass
class ChangesFeed:
    """One streamed `_changes` response: read its rows (or save its body), then `last_seq`
    and `pending` are known."""

    response: requests.Response
    db: str
    deadline: float = float("inf")  # time.monotonic() by which the whole body must have arrived
    last_seq: str | None = None
    pending: int | None = None
    _tail: bytearray = field(default_factory=bytearray, repr=False)

    def chunks(self) -> Iterator[bytes]:
        """The body in chunks, remembering its last bytes for the trailer. Raises
        CouchUnavailable once the page's deadline has passed, however slowly bytes still come."""
        raw = self.response.raw
        if hasattr(raw, "decode_content"):  # a urllib3 response: decode gzip as iter_content did
            raw.decode_content = True
        try:
            while True:
                # read1: whatever one socket read brings (blocking at most the read timeout),
                # so the deadline is checked however slowly the body drips. iter_content would
                # block until a whole chunk (256 kB) had arrived.
                chunk = raw.read1(CHUNK_BYTES)
                if not chunk:
                    break
                if time.monotonic() > self.deadline:
                    self.response.close()
                    raise CouchUnavailable(
                        f"CouchDB database '{self.db}': _changes page not received within its deadline"
                    )
                self._tail += chunk
                if len(self._tail) > 2 * TAIL_BYTES:  # trimmed now and then: no copy per chunk
                    del self._tail[:-TAIL_BYTES]
                yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise CouchUnavailable(
                f"CouchDB database '{self.db}': {type(exc).__name__} while reading _changes"
            ) from None
        self._read_trailer()

    def rows(self) -> Iterator[dict[str, Any]]:
        yield from parse_rows(self.chunks(), self.db)

    def save_to(self, body: BinaryIO) -> None:
        """Copy the body to a file without parsing it (its rows are parsed later)."""
        for chunk in self.chunks():
            body.write(chunk)

    def _read_trailer(self) -> None:
        # CouchDB and PouchDB write {"results": [...], "last_seq": ..., "pending": ...}. Parsing
        # the trailer from the last bytes avoids a second full parse of the body just for two
        # scalars; the last '"last_seq"' in the body is the top-level key, since it follows every row.
        start = self._tail.rfind(b'"last_seq"')
        try:
            trailer = json.loads(b"{" + self._tail[start:]) if start >= 0 else {}
        except ValueError:
            trailer = {}
        if "last_seq" not in trailer:
            raise CouchUnavailable(
                f"CouchDB database '{self.db}': _changes body truncated (no last_seq at its end)"
            )
        seq = trailer["last_seq"]
        self.last_seq = seq if isinstance(seq, str) else json.dumps(seq)
        pending = trailer.get("pending")
        self.pending = int(pending) if pending is not None else None


class CouchClient:
    """Client for one database of one CouchDB server."""

    def __init__(
        self,
        server_url: str,
        db: str,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        page_timeout: float = PAGE_TIMEOUT,
    ) -> None:
        self.server_url, auth = split_credentials(server_url)
        self.db = db
        self.timeout = (connect_timeout, timeout)
        self.page_timeout = page_timeout
        self.session = requests.Session()
        self.session.auth = auth
        # Uncompressed: on a LAN, gzip costs both ends more CPU than it saves time.
        self.session.headers.update({"Accept": "application/json", "Accept-Encoding": "identity"})

    @property
    def db_url(self) -> str:
        return f"{self.server_url}/{quote(self.db, safe='')}"

    def _request(
        self, method: str, path: str = "", *, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        url = self.db_url + path
        try:
            response = self.session.request(method, url, timeout=self.timeout, stream=stream, **kwargs)
        except requests.RequestException as exc:
            # requests' messages embed the URL; the URL has no credentials but keep errors terse.
            raise CouchUnavailable(
                f"CouchDB database '{self.db}': {type(exc).__name__} on {method} {path or '/'}"
            ) from None
        if response.status_code >= 400:
            self._raise_for_status(response, method, path)
        return response

    def _raise_for_status(self, response: requests.Response, method: str, path: str) -> None:
        status = response.status_code
        try:
            reason = response.json().get("reason") or response.json().get("error") or ""
        except ValueError:
            reason = response.text[:200]
        finally:
            response.close()
        where = f"CouchDB database '{self.db}': HTTP {status} on {method} {path or '/'}"
        if status in (401, 403):
            raise CouchAuthError(
                f"{where}: access refused, check the credentials in COUCHDB_URL ({reason})", status
            )
        if status >= 500 or status == 429:
            raise CouchUnavailable(f"{where}: {reason}", status)
        raise CouchError(f"{where}: {reason}", status)

    def db_info(self) -> dict[str, Any]:
        return self._request("GET").json()

    def create_db(self) -> None:
        try:
            self._request("PUT")
        except CouchError as exc:
            if exc.status != 412:  # 412: the database exists already
                raise

    def delete_db(self) -> None:
        self._request("DELETE")

    def bulk_docs(self, docs: list[dict[str, Any]], *, new_edits: bool = True) -> list[dict[str, Any]]:
        body = {"docs": docs, "new_edits": new_edits}
        return self._request("POST", "/_bulk_docs", json=body).json()

    def get_doc(self, doc_id: str, **params: Any) -> dict[str, Any]:
        return self._request("GET", "/" + quote(doc_id, safe=":"), params=params).json()

    def get_attachment(self, doc_id: str, name: str) -> bytes:
        path = f"/{quote(doc_id, safe=':')}/{quote(name, safe='')}"
        return self._request("GET", path).content

    def all_doc_ids(self, *, page_size: int = 10_000) -> Iterator[str]:
        """Every live doc id (tombstones excluded), paged by startkey."""
        startkey: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if startkey is not None:
                params.update(startkey=json.dumps(startkey), skip=1)
            rows = self._request("GET", "/_all_docs", params=params).json()["rows"]
            yield from (row["id"] for row in rows)
            if len(rows) < page_size:
                return
            startkey = rows[-1]["key"]

    def all_docs(
        self, *, page_size: int = 500, attachments: bool = False, conflicts: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every live doc (its winning revision), paged by startkey; `attachments` inlines their
        content (base64), `conflicts` lists the losing leaves in `_conflicts`."""
        startkey: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size, "include_docs": "true"}
            if attachments:
                params["attachments"] = "true"
            if conflicts:
                params["conflicts"] = "true"
            if startkey is not None:
                params.update(startkey=json.dumps(startkey), skip=1)
            rows = self._request("GET", "/_all_docs", params=params).json()["rows"]
            yield from (row["doc"] for row in rows if row.get("doc"))
            if len(rows) < page_size:
                return
            startkey = rows[-1]["key"]

    def docs_by_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """The live docs whose ids start with `prefix` (e.g. CHT's `form:` docs), attachments as stubs."""
        params = {
            "include_docs": "true",
            "startkey": json.dumps(prefix),
            "endkey": json.dumps(prefix + "\ufff0"),
        }
        rows = self._request("GET", "/_all_docs", params=params).json()["rows"]
        return [row["doc"] for row in rows if row.get("doc")]

    def rows_for_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        """`_all_docs` rows for `ids`: the winning doc with its conflicts, `value.deleted` for a
        deleted doc, `error: not_found` for an id CouchDB does not know (or purged)."""
        params = {"include_docs": "true", "conflicts": "true"}
        return self._request("POST", "/_all_docs", params=params, json={"keys": ids}).json()["rows"]

    def changed_ids(self, since: str, *, limit: int) -> tuple[list[str], str]:
        """The ids of the docs changed after `since` (at most `limit` changes) and the last seq."""
        body = self._request("GET", "/_changes", params={"since": since, "limit": limit}).json()
        seq = body.get("last_seq", since)
        return [row["id"] for row in body["results"]], seq if isinstance(seq, str) else json.dumps(seq)

    def wait_for_change(self, since: str, seconds: float) -> bool:
        """True as soon as the database has a change after `since`, False when none came within
        `seconds`: one longpoll `_changes` request, which CouchDB answers when a change arrives
        or its `timeout` passed. pouchdb-server ignores that timeout (it sends blank lines until
        a change), hence the deadline kept here too."""
        params = {"feed": "longpoll", "since": since, "limit": 1, "timeout": int(seconds * 1000)}
        deadline = time.monotonic() + seconds + 1
        response = self._request("GET", "/_changes", params=params, stream=True)
        body = bytearray()
        try:
            for chunk in response.iter_content(chunk_size=None):
                body += chunk
                if time.monotonic() > deadline:
                    return False
        except requests.RequestException as exc:
            raise CouchUnavailable(
                f"CouchDB database '{self.db}': {type(exc).__name__} on GET /_changes"
            ) from None
        finally:
            response.close()
        return bool(json.loads(body).get("results"))

    @contextmanager
    def changes(self, since: str, limit: int) -> Iterator[ChangesFeed]:
        """Stream one `_changes` page with the winning docs and their conflicting revisions."""
        params = {
            "since": since,
            "limit": limit,
            "seq_interval": limit,
            "include_docs": "true",
            "conflicts": "true",
        }
        deadline = time.monotonic() + self.page_timeout
        response = self._request("GET", "/_changes", params=params, stream=True)
        try:
            yield ChangesFeed(response, self.db, deadline)
        finally:
            response.close()
