"""When an object, or its checks, can be left as they are: the versions of what they read.

Every object keeps a data version (cht_meta.refresh_state.data_version), a token that changes
whenever its rows may have changed:

- a function: its code;
- an incremental table: a new token when a refresh rewrote rows or rebuilt it, else the old one
  (most changes are docs of other kinds: a new report leaves the contacts as they were);
- a view, or a table rebuilt in full (a rollup): the version of its inputs. A view computes its
  rows from them on every read; a rollup is rebuilt only when they moved.

The version of an object's inputs combines its code with the data version of every object it
reads, the raw replica's committed change_seq when it reads the raw docs (or, for an object whose
`-- raw_docs:` header says which docs it reads, the change_seq of the last of those: a view of
the translation docs does not move with every report), a digest of the rows of
the small tables written outside the catalog (the dictionary's form_choices), and today's date
when its SQL asks for the current date or time. A rollup takes the date in whatever its SQL
says, and so is rebuilt at least once a day: a doc that an edit took out of a `raw_docs` filter
(a person whose type changed) does not move the filter's change_seq. The replication's progress
and the refresh state move on every run: an object reading them has no inputs version, and is
refreshed and checked every time, as every object was before versions.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import psycopg

from cht_assets.replica.schema import RAW_RELATIONS
from cht_assets.sqlnames import quote_ident, quote_qualified
from cht_assets.warehouse.state import RefreshState, read_data_versions

# Raw relations that change with the replicated docs (their change_seq versions them); the
# replication's progress moves on every sync, docs or not.
RAW_DOCS = frozenset(RAW_RELATIONS) - {"raw.couchdb_progress", "couchdb_progress"}
VOLATILE = frozenset({"raw.couchdb_progress", "couchdb_progress", "cht_meta.refresh_state"})
TIME_DEPENDENT = re.compile(
    r"\b(current_date|current_timestamp|localtimestamp|now\s*\(|clock_timestamp|statement_timestamp|"
    r"transaction_timestamp)",
    re.IGNORECASE,
)


def digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def fresh_token() -> str:
    """A version no other equals: for rows built from inputs without versions."""
    return uuid.uuid4().hex


def docs_seq(conn: psycopg.Connection, raw_docs: str, since: RefreshState | None, upto: int) -> int:
    """The change_seq of the last raw doc that the `raw_docs` predicate selects, or that was
    deleted (a tombstone no longer says what it was), up to `upto`: looked for only after the
    change_seq the object was last refreshed as of, when it knew its docs_seq then."""
    known = since is not None and since.docs_seq is not None
    scan_from, last = (since.change_seq, since.docs_seq) if known else (-1, 0)
    found = conn.execute(
        f"SELECT max(change_seq) FROM raw.couchdb_docs WHERE change_seq > %s AND change_seq <= %s "
        f"AND (_deleted OR ({raw_docs.replace('%', '%%')}))",
        (scan_from, upto),
    ).fetchone()[0]
    return last if found is None else found


def inputs_version(
    conn: psycopg.Connection,
    code: str,
    reads: Iterable[str],
    texts: Iterable[str],
    raw_seq: int,
    *,
    daily: bool = False,
) -> str | None:
    """The version of what `reads` names (objects and raw relations) holds now, with `code`;
    None when one of them has no version. `raw_seq` stands for the raw docs; `texts` are the
    SQL that reads them (the date joins in when one asks for the current date or time, or when
    `daily`)."""
    names = sorted(set(reads))
    versions = read_data_versions(conn, [name for name in names if name not in RAW_DOCS])
    parts = [code]
    for name in names:
        if name in RAW_DOCS:
            version = f"raw:{raw_seq}"
        elif name in versions or name in VOLATILE:  # an object: its data version (None: unknown)
            version = versions.get(name)
        else:
            version = rows_digest(conn, name)
        if version is None:
            return None
        parts.append(f"{name}={version}")
    if daily or any(TIME_DEPENDENT.search(text) for text in texts):
        parts.append(datetime.now(UTC).date().isoformat())
    return digest(parts)


def rows_digest(conn: psycopg.Connection, name: str) -> str | None:
    """A digest of a relation's rows (None: it does not exist). For small tables only."""
    if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None:
        return None
    relation = quote_qualified(*name.split(".", 1)) if "." in name else quote_ident(name)
    found = conn.execute(f"SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM {relation} AS t")
    return found.fetchone()[0] or "empty"
