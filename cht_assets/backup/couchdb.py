"""A full dump of one CouchDB database, and the restore drill.

One gzip NDJSON file: every live doc (winning revision) with its attachments inline (base64),
then, right after it, each conflicting leaf revision of that doc. Restoring writes every line
with `new_edits=false`, which keeps the revisions and so the same winners and conflicts.
Tombstones are not kept: a restored database has no record of deleted docs.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cht_assets.backup import files
from cht_assets.backup.files import BackupError
from cht_assets.couch.client import CouchClient

SUFFIX = ".ndjson.gz"
PAGE_SIZE = 100  # docs per _all_docs page: attachments (photos) make docs large
RESTORE_BATCH = 200
PROGRESS_SECONDS = 10.0
Log = Callable[[str], None]


@dataclass(frozen=True)
class CouchDump:
    path: Path
    db: str
    docs: int
    conflict_revisions: int
    attachments: int
    bytes: int
    seconds: float
    source_doc_count: int | None  # CouchDB's doc_count, when no write happened during the dump
    removed: list[Path]


def line(doc: dict[str, Any]) -> bytes:
    # ensure_ascii: lone surrogates from phones survive as escapes and load back unchanged.
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def dump_couchdb(
    client: CouchClient, directory: Path, *, keep: int, page_size: int = PAGE_SIZE, log: Log | None = None
) -> CouchDump:
    """Dump `client.db` into `directory` (one file per run); keeps the newest `keep` dumps."""
    started = last_log = time.monotonic()
    before = client.db_info()
    path = files.new_backup_path(directory, SUFFIX)
    docs = conflicts = attachments = 0
    try:
        with gzip.open(files.partial(path), "wb", compresslevel=6) as out:
            for doc in client.all_docs(page_size=page_size, attachments=True, conflicts=True):
                leaves = doc.pop("_conflicts", None) or []
                out.write(line(doc))
                docs += 1
                attachments += len(doc.get("_attachments") or {})
                for rev in leaves:
                    out.write(line(client.get_doc(doc["_id"], rev=rev, attachments="true")))
                    conflicts += 1
                if log and time.monotonic() - last_log >= PROGRESS_SECONDS:
                    log(f"{client.db}: {docs:,} of about {before.get('doc_count', 0):,} docs dumped")
                    last_log = time.monotonic()
    except BaseException:
        files.partial(path).unlink(missing_ok=True)
        raise
    after = client.db_info()
    unchanged = str(before.get("update_seq")) == str(after.get("update_seq"))
    size = files.partial(path).stat().st_size
    source_count = int(after["doc_count"]) if unchanged and "doc_count" in after else None
    files.finish(
        path,
        {
            "db": client.db,
            "created": datetime.now(UTC).isoformat(),
            "docs": docs,
            "conflict_revisions": conflicts,
            "attachments": attachments,
            "bytes": size,
            "source_doc_count": source_count,
        },
    )
    removed = files.prune(directory, SUFFIX, keep)
    return CouchDump(
        path, client.db, docs, conflicts, attachments, size, time.monotonic() - started, source_count, removed
    )


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rb") as source:
        for raw in source:
            if raw.strip():
                yield json.loads(raw)


def restore_couchdb(path: Path, client: CouchClient, *, batch_size: int = RESTORE_BATCH) -> int:
    """Write every revision of the dump into `client.db` (created, must be empty); returns the
    number of revisions written."""
    client.create_db()
    written, batch = 0, []
    for doc in read_lines(path):
        batch.append(doc)
        if len(batch) >= batch_size:
            written += write_batch(client, batch)
            batch = []
    if batch:
        written += write_batch(client, batch)
    return written


def write_batch(client: CouchClient, docs: list[dict[str, Any]]) -> int:
    errors = [row for row in client.bulk_docs(docs, new_edits=False) if row.get("error")]
    if errors:
        raise BackupError(f"{client.db}: {len(errors)} revisions refused on restore, e.g. {errors[:2]}")
    return len(docs)


@dataclass(frozen=True)
class CouchRestoreDrill:
    path: Path
    expected_docs: int
    source_doc_count: int | None
    restored_docs: int
    revisions_written: int
    seconds: float

    @property
    def ok(self) -> bool:
        counts = {self.expected_docs, self.restored_docs}
        if self.source_doc_count is not None:
            counts.add(self.source_doc_count)
        return len(counts) == 1


def scratch_name(db: str) -> str:
    """A CouchDB database name (lowercase letter first; a-z 0-9 _$()+-/) unique to this drill."""
    safe = "".join(ch if ch.isalnum() or ch in "_-" else "-" for ch in db.lower())
    return f"cht-restore-check-{safe}-{uuid.uuid4().hex[:8]}"


def restore_drill(path: Path, server_url: str, db: str, *, log: Log | None = None) -> CouchRestoreDrill:
    """Load `path` into a scratch database on `server_url`, compare doc counts, delete it."""
    started = time.monotonic()
    manifest = files.read_manifest(path)
    scratch = CouchClient(server_url, scratch_name(db), timeout=300)
    if log:
        log(f"restoring {path.name} into scratch CouchDB database {scratch.db}")
    try:
        written = restore_couchdb(path, scratch)
        restored = int(scratch.db_info()["doc_count"])
    finally:
        try:
            scratch.delete_db()
        except Exception as exc:  # the drill's verdict matters more; report the leftover
            if log:
                log(f"could not delete scratch database {scratch.db}: {exc}")
    return CouchRestoreDrill(
        path,
        int(manifest["docs"]),
        manifest.get("source_doc_count"),
        restored,
        written,
        time.monotonic() - started,
    )
