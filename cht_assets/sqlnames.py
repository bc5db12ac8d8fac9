"""The one place that turns untrusted names and values into SQL text.

Form ids, field names and place names come from documents. Whatever they hold, they reach SQL
only through these functions: identifiers are always double-quoted, literals always
single-quoted with quotes doubled (standard_conforming_strings is on in every supported
PostgreSQL, so backslashes are plain characters).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1


class UnsafeName(ValueError):
    """A name that cannot be represented in SQL at all (it holds a NUL byte)."""


def _check(text: str) -> str:
    if "\x00" in text:
        raise UnsafeName(f"name or value holds a NUL byte: {text!r}")
    return text


def quote_ident(name: str) -> str:
    """Double-quote `name`, doubling its quotes; rejects names PostgreSQL would truncate."""
    _check(name)
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise UnsafeName(f"identifier longer than {MAX_IDENTIFIER_BYTES} bytes: {name[:80]!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_qualified(*parts: str) -> str:
    return ".".join(quote_ident(part) for part in parts)


def quote_literal(value: str) -> str:
    """Single-quote `value`, doubling its quotes."""
    return "'" + _check(value).replace("'", "''") + "'"


def safe_identifier(raw: str, taken: set[str] | None = None) -> str:
    """A deterministic, readable identifier for an untrusted name: lower-case ASCII letters,
    digits and `_`, at most 63 bytes; a short hash keeps distinct names distinct when cleaning
    or truncating made them equal. Adds the result to `taken`."""
    ascii_name = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^a-z0-9_]+", "_", ascii_name.lower()).strip("_") or "x"
    if cleaned[0].isdigit():
        cleaned = "_" + cleaned
    taken = set() if taken is None else taken
    candidate = cleaned
    if len(candidate) > MAX_IDENTIFIER_BYTES or candidate in taken:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        candidate = f"{cleaned[: MAX_IDENTIFIER_BYTES - 9]}_{digest}"
    counter = 2
    while candidate in taken:  # the same raw name twice: number it
        suffix = f"_{counter}"
        candidate = candidate[: MAX_IDENTIFIER_BYTES - len(suffix)] + suffix
        counter += 1
    taken.add(candidate)
    return candidate
