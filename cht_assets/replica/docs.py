"""What jsonb cannot hold, and what we never store.

Pages go to PostgreSQL as they come; only a page PostgreSQL refuses is parsed here and each of
its rows cleaned: \\u0000 and lone UTF-16 surrogates (from phones: SMS text, pasted data) are
replaced by U+FFFD, so the doc is kept."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

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
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
SURROGATE = re.compile("[\ud800-\udfff]")


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


def dumps(doc: Any) -> str:
    try:
        return orjson.dumps(doc).decode()
    except TypeError:  # lone surrogates (not UTF-8) or integers beyond 64 bits
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def to_json(doc: dict[str, Any]) -> tuple[str, bool]:
    """Compact JSON text that jsonb accepts, and whether characters had to be replaced."""
    text = dumps(doc)
    # Lone surrogates survive only in the stdlib's output; NUL is written as the escape.
    if "\\u0000" not in text and (text.isascii() or not SURROGATE.search(text)):
        return text, False
    scrubbed = dumps(scrub(doc))
    return scrubbed, scrubbed != text
