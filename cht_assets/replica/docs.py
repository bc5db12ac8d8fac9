"""What jsonb cannot hold, and what we never store.

Pages go to PostgreSQL as they come; only a page PostgreSQL refuses is parsed here and each of
its rows cleaned: \\u0000 and lone UTF-16 surrogates (from phones: SMS text, pasted data) are
replaced by U+FFFD, so the doc is kept."""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring
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


def xform_attachment(doc: dict[str, Any]) -> str | None:
    """The XForm attachment of a live form doc: `xml`, or another `*.xml` (not API's model.xml)."""
    if doc.get("type") != "form" or doc.get("_deleted"):
        return None
    names = [name for name in (doc.get("_attachments") or {}) if name.endswith(".xml") or name == "xml"]
    names = [name for name in names if name != "model.xml"]
    return "xml" if "xml" in names else (names[0] if names else None)


class _Text(str):
    """JSON punctuation, written as is by `clean_json`."""


def clean_json(doc: Any) -> tuple[str, int]:
    """Compact JSON text of `doc` with every unstorable character in keys and strings replaced,
    and how many were. Iterative, with an explicit stack: a doc may nest deeper than Python's
    recursion limit (CouchDB accepts any depth; a 1 000-level doc crashed the recursive
    version, tests/hostile), and orjson refuses past 255 levels."""
    parts: list[str] = []
    replaced = 0
    stack: list[Any] = [doc]
    while stack:
        item = stack.pop()
        if type(item) is _Text:
            parts.append(item)
        elif isinstance(item, str):
            text, count = UNSTORABLE.subn(REPLACEMENT, item)
            replaced += count
            parts.append(encode_basestring(text))
        elif isinstance(item, dict):
            tokens: list[Any] = [_Text("{")]
            for index, (key, value) in enumerate(item.items()):
                tokens += [_Text(",")] if index else []
                tokens += [str(key), _Text(":"), value]
            tokens.append(_Text("}"))
            stack.extend(reversed(tokens))
        elif isinstance(item, list | tuple):
            tokens = [_Text("[")]
            for index, value in enumerate(item):
                tokens += [_Text(","), value] if index else [value]
            tokens.append(_Text("]"))
            stack.extend(reversed(tokens))
        elif item is None or isinstance(item, bool):
            parts.append({None: "null", True: "true", False: "false"}[item])
        elif isinstance(item, int | float):
            parts.append(json.dumps(item))
        else:
            raise TypeError(f"not JSON: {type(item).__name__}")
    return "".join(parts), replaced


def to_json(doc: dict[str, Any]) -> tuple[str, bool]:
    """Compact JSON text that jsonb accepts, and whether characters had to be replaced."""
    try:
        text = orjson.dumps(doc).decode()
    except TypeError:  # lone surrogates (not UTF-8), integers beyond 64 bits, deeper than 255 levels
        text = None
    # orjson writes NUL as the escape, and fails on lone surrogates.
    if text is not None and "\\u0000" not in text:
        return text, False
    cleaned, replaced = clean_json(doc)
    return cleaned, replaced > 0
