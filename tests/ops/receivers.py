"""Loopback receivers for alerts: a webhook endpoint and a minimal SMTP server, each on a free
127.0.0.1 port in a thread of the test process."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.http import send_json, serve


class Inbox:
    """What a receiver got, in order; `wait_for` polls until a predicate holds."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.lock = threading.Lock()

    def add(self, item: Any) -> None:
        with self.lock:
            self.items.append(item)

    def snapshot(self) -> list[Any]:
        with self.lock:
            return list(self.items)

    def wait_for(self, predicate: Callable[[list[Any]], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(self.snapshot())
            if found:
                return found
            time.sleep(0.5)
        texts = "\n---\n".join(str(item) for item in self.snapshot())
        raise AssertionError(f"{what}: not received within {timeout:.0f}s; got:\n{texts}")


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, Inbox]]:
    """Yields (URL, inbox of the `text` of every JSON body posted)."""
    inbox = Inbox()

    def handle(handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        inbox.add(body.get("text", ""))
        send_json(handler, 200, {"ok": True})

    with serve(handle) as url:
        yield f"{url}/hooks/T000/B000/not-a-real-secret", inbox


class SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO/HELO, MAIL, RCPT, DATA, QUIT."""

    inbox: Inbox

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 localhost test SMTP")
        envelope: dict[str, Any] = {"to": []}
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.decode(errors="replace").strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 localhost")
            elif verb == "MAIL":
                envelope["from"] = command.split(":", 1)[1].strip()
                self.reply("250 OK")
            elif verb == "RCPT":
                envelope["to"].append(command.split(":", 1)[1].strip())
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.inbox.add((envelope, message_from_bytes(data)))
                envelope = {"to": []}
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("250 OK")


@contextmanager
def smtp_receiver() -> Iterator[tuple[int, Inbox]]:
    """Yields (port, inbox of (envelope, email.message.Message))."""
    inbox = Inbox()
    handler = type("BoundSmtpHandler", (SmtpHandler,), {"inbox": inbox})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], inbox
    finally:
        server.shutdown()
        server.server_close()


def body(message: Message) -> str:
    return message.get_payload(decode=True).decode().replace("\r\n", "\n")
