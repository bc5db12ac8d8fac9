from __future__ import annotations

import io
import json

import pytest
import requests

from cht_assets.couch.client import ChangesFeed, split_credentials
from cht_assets.couch.errors import CouchUnavailable


@pytest.mark.parametrize(
    ("url", "bare", "auth"),
    [
        ("http://127.0.0.1:5984", "http://127.0.0.1:5984", None),
        ("https://admin:p%40ss@cht.example.org/", "https://cht.example.org", ("admin", "p@ss")),
        ("http://u:pw@[::1]:5984/couch", "http://[::1]:5984/couch", ("u", "pw")),
    ],
)
def test_credentials_are_split_from_the_url(url: str, bare: str, auth: tuple[str, str] | None) -> None:
    assert split_credentials(url) == (bare, auth)


def feed_of(body: bytes) -> ChangesFeed:
    response = requests.Response()
    response.raw = io.BytesIO(body)
    response.status_code = 200
    return ChangesFeed(response, "medic")


def test_changes_rows_and_trailer_are_streamed() -> None:
    rows = [
        {"seq": None, "id": f"d{i}", "changes": [{"rev": "1-a"}], "doc": {"_id": f"d{i}", "last_seq": "x"}}
        for i in range(3)
    ]
    body = json.dumps({"results": rows, "last_seq": "3-g1AAAA_opaque", "pending": 12}).encode()
    feed = feed_of(body)
    assert list(feed.rows()) == rows
    assert (feed.last_seq, feed.pending) == ("3-g1AAAA_opaque", 12)


def test_integer_seqs_become_strings_and_pending_may_be_absent() -> None:
    feed = feed_of(b'{"results":[],\n"last_seq":42}\n')
    assert list(feed.rows()) == []
    assert (feed.last_seq, feed.pending) == ("42", None)


def test_truncated_body_is_retryable() -> None:
    body = json.dumps({"results": [{"id": "a", "changes": [], "doc": {}}] * 5, "last_seq": "5"}).encode()
    with pytest.raises(CouchUnavailable, match="truncated"):
        list(feed_of(body[: len(body) // 2]).rows())
