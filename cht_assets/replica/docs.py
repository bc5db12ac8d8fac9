"""Turn one `_changes` row into the values stored for it, cleaning what jsonb cannot hold."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# CouchDB's _users docs carry password hashes; like couch2pg and cht-sync we never store them.
USER_SECRET_FIELDS = (
    "password",
    "password_sha",
    "password_scheme",
    "derived_key",
    "salt",
    "iterations",
    "pbkdf2_prf",
)
# jsonb rejects \u0000 and UTF-16 surrogates that are not part of a pair; both come through
# JSON from phones (SMS text, pasted data). They are replaced by U+FFFD so the doc is kept.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
# json.dumps writes NUL as the escape \u0000 and lone surrogates as raw characters.
MAYBE_UNSTORABLE = re.compile("\\\\u0000|[\ud800-\udfff]")


@dataclass(frozen=True)
class DocRow:
    doc_id: str
    rev: str
    deleted: bool
    conflicts: list[str] | None
    doc_json: str
    cleaned: bool
    xform_attachment: str | None = None


def xform_attachment(doc: dict[str, Any]) -> str | None:
    """The XForm attachment of a live form doc: `xml`, or another `*.xml` (not API's model.xml)."""
    if doc.get("type") != "form" or doc.get("_deleted"):
        return None
    names = [name for name in (doc.get("_attachments") or {}) if name.endswith(".xml") or name == "xml"]
    names = [name for name in names if name != "model.xml"]
    return "xml" if "xml" in names else (names[0] if names else None)


def scrub(value: Any) -> Any:
    """A copy of `value` with every unstorable character in keys and strings replaced."""
    if isinstance(value, str):
        return UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {scrub(key): scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return value


def strip_user_secrets(doc: dict[str, Any]) -> None:
    if doc.get("type") == "user" or str(doc.get("_id", "")).startswith("org.couchdb.user:"):
        for name in USER_SECRET_FIELDS:
            doc.pop(name, None)


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def doc_row(change: dict[str, Any]) -> DocRow:
    """The stored form of a change: the winning revision, its conflicts, and whether it is deleted."""
    doc = change.get("doc")
    if not isinstance(doc, dict):
        # CouchDB may send no body for a deleted doc; store the stub it stands for.
        doc = {"_id": change["id"], "_rev": change["changes"][0]["rev"], "_deleted": True}
    conflicts = doc.pop("_conflicts", None)
    strip_user_secrets(doc)
    text = to_json(doc)
    cleaned = False
    if MAYBE_UNSTORABLE.search(text):
        scrubbed = to_json(scrub(doc))
        cleaned, text = scrubbed != text, scrubbed
    return DocRow(
        doc_id=UNSTORABLE.sub(REPLACEMENT, change["id"]),
        rev=doc.get("_rev") or change["changes"][0]["rev"],
        deleted=bool(change.get("deleted") or doc.get("_deleted")),
        conflicts=conflicts,
        doc_json=text,
        cleaned=cleaned,
        xform_attachment=xform_attachment(doc),
    )
