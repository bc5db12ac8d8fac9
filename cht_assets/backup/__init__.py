"""Backups of the analytics database (pg_dump, custom format) and of each CouchDB database (every
live doc with its attachments and conflicting revisions, gzip NDJSON), the last N kept, and the
restore drills that prove them. Pure: the Dagster assets are in cht_assets.defs.backups."""

from cht_assets.backup.files import BackupError

__all__ = ["BackupError"]
