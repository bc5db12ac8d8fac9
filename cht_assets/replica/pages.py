"""Consecutive `_changes` pages, downloaded one ahead of the writer.

A background thread saves each page's body to a spooled file (memory up to SPOOL_BYTES, disk
beyond, so memory does not grow with the page size) and reads its trailer, so the request for
the next page goes out while the writer still parses and stores the current one: CouchDB
prepares page N+1 while PostgreSQL takes page N.
"""

from __future__ import annotations

import queue
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, BinaryIO

from cht_assets.couch.client import CHUNK_BYTES, CouchClient, parse_rows

SPOOL_BYTES = 8 * 1024 * 1024
_DONE = object()


@dataclass
class Page:
    db: str
    since: str
    limit: int
    last_seq: str
    pending: int | None
    body: BinaryIO

    @property
    def size(self) -> int:
        return self.body.seek(0, 2)

    def chunks(self) -> Iterator[bytes]:
        self.body.seek(0)
        return iter(partial(self.body.read, CHUNK_BYTES), b"")

    def changes(self) -> Iterator[dict[str, Any]]:
        """The rows parsed here, exactly (only for pages PostgreSQL refused: rare)."""
        return parse_rows(self.chunks(), self.db, exact=True)

    def close(self) -> None:
        self.body.close()


class ChangesPager:
    """Iterate the pages from `since` until the feed is drained; use as a context manager."""

    def __init__(self, client: CouchClient, since: str, limit: int) -> None:
        self.client, self.since, self.limit = client, since, limit
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._cancelled = threading.Event()
        self._response = None
        self._thread = threading.Thread(target=self._download, name=f"changes-{client.db}", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._cancelled.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _download(self) -> None:
        since = self.since
        while not self._cancelled.is_set():
            body = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (handed to the writer, closed there)
            try:
                with self.client.changes(since, self.limit) as feed:
                    self._response = feed.response
                    feed.save_to(body)
            except Exception as exc:  # the writer decides about retrying
                body.close()
                self._put(exc)
                return
            page = Page(self.client.db, since, self.limit, feed.last_seq or since, feed.pending, body)
            if not self._put(page):
                page.close()
                return
            if page.last_seq == since or page.pending == 0:
                break
            since = page.last_seq
        self._put(_DONE)

    def __iter__(self) -> Iterator[Page]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        """Stop downloading and drop pages not yet taken."""
        self._cancelled.set()
        if self._response is not None:
            self._response.close()
        self._thread.join(timeout=10)
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, Page):
                item.close()

    def __enter__(self) -> ChangesPager:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
