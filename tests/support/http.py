"""Loopback HTTP servers for tests: a fault-injecting proxy in front of pouchdb-server, and a
server that answers with recorded CouchDB 3 responses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests

Handler = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def serve(handle: Handler) -> Iterator[str]:
    """Run `handle` for every request on a free 127.0.0.1 port; yields the base URL."""

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            handle(self)

        do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def send_json(handler: BaseHTTPRequestHandler, status: int, body: object) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class FaultProxy:
    """Forwards to `upstream`; `_changes` requests first meet the faults queued in `faults`.

    Faults: "500", "reset" (close without answering), "stall" (answer nothing for
    `stall_seconds`), "truncate" (send half the body, then close), "drip" (send the body a few
    bytes at a time), "endless_drip" (announce the whole body, then send one byte every
    `drip_interval` seconds: each read succeeds, the body never ends; the handler gives up after
    `endless_seconds` or when the client hangs up). Any other entry ("ok", None) passes the
    request through, so faults can be placed on chosen requests. `served` records the fault (or
    None) each `_changes` request met, in order.

    With `forward_auth=False` the proxy keeps the Authorization header to itself (pouchdb-server
    refuses credentials it does not know), recording each one in `auth_seen`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        stall_seconds: float = 3.0,
        drip_interval: float = 0.05,
        endless_seconds: float = 60.0,
        forward_auth: bool = True,
    ) -> None:
        self.upstream = upstream
        self.stall_seconds = stall_seconds
        self.drip_interval = drip_interval
        self.endless_seconds = endless_seconds
        self.forward_auth = forward_auth
        self.auth_seen: list[str] = []
        self.faults: list[str | None] = []
        self.served: list[str | None] = []
        self.changes_requests = 0
        self.lock = threading.Lock()

    def next_fault(self, path: str) -> str | None:
        if "/_changes" not in path:
            return None
        with self.lock:
            self.changes_requests += 1
            fault = self.faults.pop(0) if self.faults else None
            self.served.append(fault)
            return fault

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        fault = self.next_fault(handler.path)
        if not self.forward_auth and handler.headers.get("Authorization"):
            with self.lock:
                self.auth_seen.append(handler.headers["Authorization"])
        forwarded = ("content-type", "accept") + (("authorization",) if self.forward_auth else ())
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        if fault == "500":
            send_json(handler, 500, {"error": "internal_server_error", "reason": "injected"})
            return
        if fault == "reset":
            handler.close_connection = True
            handler.connection.close()
            return
        if fault == "stall":
            time.sleep(self.stall_seconds)
            handler.close_connection = True
            return
        upstream = requests.request(
            handler.command,
            self.upstream + handler.path,
            data=body,
            headers={k: v for k, v in handler.headers.items() if k.lower() in forwarded},
            timeout=60,
        )
        data = upstream.content
        handler.send_response(upstream.status_code)
        handler.send_header("Content-Type", upstream.headers.get("Content-Type", "application/json"))
        if fault == "truncate":
            # Chunked-free, length-less body ended early: the client sees a clean EOF mid-JSON.
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])
            handler.close_connection = True
            return
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if fault == "endless_drip":
            self.endless_drip(handler, data)
            return
        if fault == "drip":
            for start in range(0, len(data), max(1, len(data) // 50)):
                handler.wfile.write(data[start : start + max(1, len(data) // 50)])
                handler.wfile.flush()
                time.sleep(0.01)
            return
        handler.wfile.write(data)

    def endless_drip(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        """One byte per `drip_interval`, bounded by `endless_seconds` (and by the body's length)."""
        handler.close_connection = True
        deadline = time.monotonic() + self.endless_seconds
        try:
            for index in range(len(data)):
                if time.monotonic() > deadline:
                    return
                handler.wfile.write(data[index : index + 1])
                handler.wfile.flush()
                time.sleep(self.drip_interval)
        except OSError:  # the client gave up and closed the connection
            return


class RecordedCouch3:
    """Answers `GET /{db}/_changes?since=S` with the page recorded for S, like CouchDB 3 would:
    opaque string seqs, `pending`, and `seq: null` on rows between seq_interval marks."""

    def __init__(self, db: str, pages: dict[str, dict], attachments: dict[str, bytes] | None = None) -> None:
        self.db = db
        self.pages = pages
        self.attachments = attachments or {}
        self.requests: list[dict[str, list[str]]] = []

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = parse_qs(url.query)
        if url.path == f"/{self.db}/_changes":
            self.requests.append(query)
            since = query.get("since", ["0"])[0]
            if since not in self.pages:
                send_json(
                    handler, 400, {"error": "bad_request", "reason": f"Malformed sequence supplied: {since}"}
                )
                return
            send_json(handler, 200, self.pages[since])
        elif url.path.removeprefix(f"/{self.db}/") in self.attachments:
            data = self.attachments[url.path.removeprefix(f"/{self.db}/")]
            handler.send_response(200)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        elif url.path == f"/{self.db}":
            send_json(handler, 200, {"db_name": self.db, "update_seq": list(self.pages)[-1]})
        else:
            send_json(handler, 404, {"error": "not_found", "reason": "missing"})
