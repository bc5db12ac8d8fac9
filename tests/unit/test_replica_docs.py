from __future__ import annotations

import json

from cht_assets.replica.docs import doc_row
from cht_assets.replica.schema import compat_relation


def change(doc: dict | None, **extra) -> dict:
    doc_id = doc["_id"] if doc else "gone"
    return {"id": doc_id, "changes": [{"rev": "2-b"}], "doc": doc, **extra}


def test_conflicts_move_out_of_the_doc() -> None:
    row = doc_row(change({"_id": "c", "_rev": "3-a", "_conflicts": ["3-b"], "name": "x"}))
    assert row.conflicts == ["3-b"] and "_conflicts" not in json.loads(row.doc_json)
    assert (row.rev, row.deleted, row.cleaned) == ("3-a", False, False)


def test_unstorable_characters_are_replaced_not_dropped() -> None:
    row = doc_row(change({"_id": "n", "_rev": "1-a", "sms": "a\x00b", "k\x00": ["\ud800"]}))
    assert row.cleaned
    assert json.loads(row.doc_json) == {"_id": "n", "_rev": "1-a", "sms": "a\ufffdb", "k\ufffd": ["\ufffd"]}


def test_literal_backslash_u0000_text_is_left_alone() -> None:
    row = doc_row(change({"_id": "l", "_rev": "1-a", "text": "\\u0000"}))
    assert not row.cleaned and json.loads(row.doc_json)["text"] == "\\u0000"


def test_user_password_fields_are_stripped() -> None:
    doc = {
        "_id": "org.couchdb.user:chw",
        "_rev": "1-a",
        "type": "user",
        "name": "chw",
        "derived_key": "k",
        "salt": "s",
        "password_scheme": "pbkdf2",
        "iterations": 10,
        "roles": ["chw"],
    }
    stored = json.loads(doc_row(change(doc)).doc_json)
    assert stored == {
        "_id": "org.couchdb.user:chw",
        "_rev": "1-a",
        "type": "user",
        "name": "chw",
        "roles": ["chw"],
    }


def test_deleted_change_without_body_becomes_a_stub() -> None:
    row = doc_row(change(None, deleted=True))
    assert row.deleted and json.loads(row.doc_json) == {"_id": "gone", "_rev": "2-b", "_deleted": True}


def test_couch2pg_relations() -> None:
    assert compat_relation("medic") == compat_relation("medic-sentinel") == "couchdb"
    assert compat_relation("medic-users-meta") == "couchdb_users_meta"
    assert compat_relation("medic-logs") == "couchdb_medic_logs"
    assert compat_relation("_users") == "couchdb_medic_users"
