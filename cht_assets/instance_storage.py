"""Dagster's instance storage, SQLite or PostgreSQL, its database connections kept open.

Dagster's SQLite storages create an engine, connect, commit and close for every event they store
(SQLAlchemy's NullPool): closing the last connection to a WAL database checkpoints it, and every
commit waits for the disk. A run of every view stores ~800 events whatever changed, so that was
two thirds of its wall time when nothing changed (bench/scale.py measures the storages side by
side). Here each database file keeps one engine and one pooled connection, in WAL mode with
`synchronous=NORMAL`: a commit reaches the disk at the next checkpoint, not at every event (a
power cut may lose the last events; the file stays consistent). The files, their layout and
schema are Dagster's own, so a DAGSTER_HOME moves between this storage and Dagster's either way.
dagster-postgres connects for every event too (but in the webserver): `KeptPostgresStorage`
keeps a connection per storage, on Dagster's own tables.

    storage:
      custom:
        module: cht_assets.instance_storage
        class: KeptSqliteStorage        # `dagster dev`'s; KeptPostgresStorage in deploy/
        config:
          base_dir: {env: DAGSTER_HOME}
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dagster._core.storage.event_log.base import EventHandlerFn
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster_postgres.storage import DagsterPostgresStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config
from sqlalchemy.engine import Connection
from watchdog.events import FileSystemEvent
from watchdog.observers import Observer

# dagster.yaml's `storage:` for it, files in DAGSTER_HOME as Dagster's own SQLite storage keeps them.
KEPT_SQLITE_STORAGE = {
    "storage": {
        "custom": {
            "module": __name__,
            "class": "KeptSqliteStorage",
            "config": {"base_dir": {"env": "DAGSTER_HOME"}},
        }
    }
}
# Engines kept by one event-log storage: the index database (every asset event is mirrored
# there) and the event logs of the latest runs; older runs' files are closed.
KEPT_EVENT_LOG_FILES = 8


def kept_engine(conn_string: str) -> sa.Engine:
    """One SQLite file's engine: a connection kept for reuse (more open only while threads
    overlap, closed when returned), each in WAL's `synchronous=NORMAL` mode."""
    engine = sa.create_engine(
        conn_string,
        poolclass=sa.pool.QueuePool,
        pool_size=1,
        max_overflow=8,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )
    sa.event.listen(
        engine, "connect", lambda dbapi_connection, _: dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    )
    return engine


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


class KeptConnection:
    """For a storage in one SQLite file (Dagster's run or schedule storage, mixed in before it):
    its transactions through one kept engine."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None):
        self._engine = kept_engine(conn_string)
        super().__init__(conn_string, inst_data)  # type: ignore[call-arg]

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> Any:
        return cls.from_local(inst_data=inst_data, **config_value)  # type: ignore[attr-defined]

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with transaction(self._engine) as conn:
            yield conn

    def dispose(self) -> None:
        self._engine.dispose()
        super().dispose()  # type: ignore[misc]


class KeptSqliteRunStorage(KeptConnection, SqliteRunStorage):
    """Runs (`history/runs.db`)."""


class KeptSqliteScheduleStorage(KeptConnection, SqliteScheduleStorage):
    """Schedule and sensor ticks (`schedules/schedules.db`)."""


class WalWatchdog(SqliteEventLogStorageWatchdog):
    """Wakes a run's log watcher (the UI's live run view) when its events land in the WAL file,
    where kept connections write them until a checkpoint, as well as in the database file."""

    @property
    def patterns(self) -> list[str]:
        return [self._log_path, f"{self._log_path}-wal"]

    def on_modified(self, event: FileSystemEvent) -> None:
        self._process_log()


class KeptSqliteEventLogStorage(SqliteEventLogStorage):
    """Event logs (`history/runs/<run id>.db`, `index.db`): an engine kept per file, for the
    index and the latest runs."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: collections.OrderedDict[str, sa.Engine] = collections.OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> KeptSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine_for(self, shard: str) -> sa.Engine:
        """The shard's engine, the least recently used one disposed beyond the kept number
        (the caller holds `_db_lock`)."""
        engine = self._engines.pop(shard, None) or kept_engine(self.conn_string_for_shard(shard))
        self._engines[shard] = engine
        while len(self._engines) > KEPT_EVENT_LOG_FILES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine_for(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with transaction(engine) as conn:
                yield conn

    def watch(self, run_id: str, cursor: str | None, callback: EventHandlerFn) -> None:
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
        watchdog = WalWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (
            watchdog,
            self._obs.schedule(watchdog, self._base_dir, recursive=True),
        )

    def _dispose_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._dispose_engines()  # before Dagster deletes the files
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


class KeptSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, event logs, schedules under `base_dir`, as Dagster lays
    them out) through kept connections."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self.base_dir = base_dir
        self._run_storage = KeptSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = KeptSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = KeptSqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> KeptSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


class KeptPostgresStorage(DagsterPostgresStorage):
    """Dagster's PostgreSQL storage (deploy/dagster.yaml) with a connection kept per storage
    (runs, event log, schedules), checked before use (a restarted server costs a reconnect, not
    a failed write), where dagster-postgres connects for every event outside the webserver. The
    connections close with the process (the instance disposes of its run and event-log storages
    only, and those of dagster-postgres hold nothing to dispose)."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage._engine = create_pg_engine(
                postgres_url,
                token_provider,
                isolation_level="AUTOCOMMIT",
                pool_size=1,
                max_overflow=8,
                pool_pre_ping=True,
                pool_recycle=3600,
            )

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> KeptPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
