from __future__ import annotations

import json

from cht_assets.replica.docs import to_json, xform_attachment
from cht_assets.replica.schema import compat_relation


def test_unstorable_characters_are_replaced_not_dropped() -> None:
    text, cleaned = to_json({"_id": "n", "sms": "a\x00b", "k\x00": ["\ud800"]})
    assert cleaned
    assert json.loads(text) == {"_id": "n", "sms": "a\ufffdb", "k\ufffd": ["\ufffd"]}


def test_literal_backslash_u0000_text_is_left_alone() -> None:
    text, cleaned = to_json({"_id": "l", "text": "\\u0000"})
    assert not cleaned and json.loads(text)["text"] == "\\u0000"


def test_plain_docs_pass_through() -> None:
    doc = {"_id": "u", "name": "Ñandú 中文 🙂", "n": 12345678901234567890123}
    text, cleaned = to_json(doc)
    assert not cleaned and json.loads(text) == doc


def test_xform_attachment_of_form_docs() -> None:
    assert xform_attachment({"type": "form", "_attachments": {"xml": {}, "form.html": {}}}) == "xml"
    assert (
        xform_attachment({"type": "form", "_attachments": {"model.xml": {}, "delivery.xml": {}}})
        == "delivery.xml"
    )
    assert xform_attachment({"type": "form", "_deleted": True, "_attachments": {"xml": {}}}) is None
    assert xform_attachment({"type": "data_record", "_attachments": {"xml": {}}}) is None


def test_couch2pg_relations() -> None:
    assert compat_relation("medic") == compat_relation("medic-sentinel") == "couchdb"
    assert compat_relation("medic-users-meta") == "couchdb_users_meta"
    assert compat_relation("medic-logs") == "couchdb_medic_logs"
    assert compat_relation("_users") == "couchdb_medic_users"
