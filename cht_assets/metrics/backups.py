"""The newest backup of each database in BACKUP_DIR (`postgres/<db>/`, `couchdb/<db>/`, as
cht_assets.defs.backups writes them): when it was taken, from its name, and its size. Only
complete backups count: a dump still being written has a `.partial` name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cht_assets.backup import couchdb as couch_backup
from cht_assets.backup import postgres as pg_backup
from cht_assets.backup.files import STAMP_FORMAT, backups

SUFFIXES = {"postgres": pg_backup.SUFFIX, "couchdb": couch_backup.SUFFIX}


@dataclass(frozen=True)
class NewestBackup:
    kind: str  # postgres or couchdb
    database: str
    taken_at: datetime
    bytes: int


def read_backups(root: Path) -> list[NewestBackup]:
    """One entry per database that has a backup; none when BACKUP_DIR does not exist yet."""
    found = []
    for kind, suffix in SUFFIXES.items():
        base = root / kind
        for directory in sorted(base.iterdir()) if base.is_dir() else []:
            kept = backups(directory, suffix)
            if kept:
                newest = kept[-1]
                found.append(
                    NewestBackup(kind, directory.name, taken_at(newest, suffix), newest.stat().st_size)
                )
    return found


def taken_at(path: Path, suffix: str) -> datetime:
    return datetime.strptime(path.name.removesuffix(suffix), STAMP_FORMAT).replace(tzinfo=UTC)
