"""Backup files: one directory per database, one timestamped file per backup, a JSON manifest
beside each, the newest `keep` kept. A backup is written under a `.partial` name and renamed
when complete, so a crash never leaves a truncated file that looks like a backup."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
STAMP = r"\d{8}T\d{12}Z"
PARTIAL = ".partial"
MANIFEST = ".json"


class BackupError(RuntimeError):
    """A backup or a restore drill failed."""


def stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(STAMP_FORMAT)


def new_backup_path(directory: Path, suffix: str, now: datetime | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob(f"*{PARTIAL}"):
        leftover.unlink(missing_ok=True)
    return directory / f"{stamp(now)}{suffix}"


def partial(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL)


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + MANIFEST)


def backups(directory: Path, suffix: str) -> list[Path]:
    """Complete backups in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    pattern = re.compile(f"^{STAMP}{re.escape(suffix)}$")
    return sorted(path for path in directory.iterdir() if pattern.match(path.name))


def newest(directory: Path, suffix: str) -> Path:
    found = backups(directory, suffix)
    if not found:
        raise BackupError(f"no backup in {directory}")
    return found[-1]


def prune(directory: Path, suffix: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups (and their manifests); returns what went."""
    found = backups(directory, suffix)
    removed = found[: max(0, len(found) - max(1, keep))]
    for path in removed:
        path.unlink(missing_ok=True)
        manifest_path(path).unlink(missing_ok=True)
    return removed


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    target = manifest_path(path)
    temporary = partial(target)
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    temporary.replace(target)


def read_manifest(path: Path) -> dict[str, Any]:
    target = manifest_path(path)
    if not target.exists():
        raise BackupError(f"{path.name} has no manifest ({target.name})")
    return json.loads(target.read_text())


def finish(path: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest, then make the partial file the backup: a listed backup always has one."""
    write_manifest(path, manifest)
    partial(path).replace(path)
