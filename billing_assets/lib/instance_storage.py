"""The instances' storage: Dagster's own, with connections kept open between transactions.

Local instance (``dagster.yaml``): ``LocalSqliteStorage``.
Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine for every transaction and
throws it away after (``NullPool``). Building an engine and its first connection costs a few
milliseconds, and each event a run records takes two or three transactions (its run's shard, the
cross-run index, the asset-check table). A single-run backfill of a month records about 610
events (planned and actual materialisations, check results for each day): that cost 5.4 s of a
13–14 s run, 1.7–2.3 s with engines kept (``make bench-backfill``).

Same files, same tables, same layout as the default ``storage: sqlite`` under ``$DAGSTER_HOME``,
so an instance can switch either way. Only the engines differ: one per shard, kept for the
``open_shards`` most recently used shards of this process and disposed beyond that, so a
long-lived daemon or webserver holds a bounded number of open files.

Production instance (``deploy/dagster.yaml``): ``PooledPostgresStorage``. dagster-postgres opens
a new connection for every transaction (``NullPool``) except in the webserver, which gives each
storage a pool of one connection. Here every process does, as the webserver does but without its
statement timeout: the demo month's single-run backfill on a local PostgreSQL took 13.2 s
instead of 19.8–22.1 s (direct compute 8.6 s). Each process then keeps up to three idle
connections (runs, events, schedules).
"""

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster import Field, IntSource, StringSource
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from sqlalchemy.engine import Connection, Engine

DEFAULT_OPEN_SHARDS = 16


def local_dagster_home() -> str:
    """$DAGSTER_HOME, else the project's local instance: ``.dagster_home`` here, as ``make`` sets it."""
    return os.environ.get("DAGSTER_HOME") or os.path.abspath(".dagster_home")


# dagster-webserver's own defaults for its pooled storage
POOL_RECYCLE_SECONDS = 3600
POOL_MAX_OVERFLOW = 20
NO_STATEMENT_TIMEOUT = 0


class KeptEngineSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that keeps one engine (and its pooled connection) per shard."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None,
                 open_shards: int = DEFAULT_OPEN_SHARDS):
        if open_shards < 1:
            raise ValueError(f"open_shards must be at least 1, got {open_shards}")
        self._open_shards = open_shards
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._engines_lock = threading.Lock()
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls):
        return {"base_dir": StringSource, "open_shards": Field(IntSource, is_required=False,
                                                                default_value=DEFAULT_OPEN_SHARDS)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data, **config_value)

    @property
    def open_engine_shards(self) -> list[str]:
        """Shards whose engine this process keeps, least recently used first."""
        return list(self._engines)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            if self._engines_pid != os.getpid():
                # a forked child must not touch its parent's connections: forget them unclosed
                for engine in self._engines.values():
                    engine.dispose(close=False)
                self._engines.clear()
                self._engines_pid = os.getpid()
            engine = self._engines.get(shard)
            if engine is not None and not os.path.exists(self.path_for_shard(shard)):
                # the shard's file was removed (a wipe, maybe by another process): reopen it
                self._engines.pop(shard).dispose()
                self._initialized_dbs.discard(shard)
                engine = None
            if engine is None:
                engine = db.create_engine(self.conn_string_for_shard(shard),
                                          connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
                self._engines[shard] = engine
                while len(self._engines) > self._open_shards:
                    self._engines.popitem(last=False)[1].dispose()
            else:
                self._engines.move_to_end(shard)
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # the parent's _connect, with a kept engine instead of a new one per transaction
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _dispose_engines(self) -> None:
        with self._engines_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._dispose_engines()
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._dispose_engines()


class LocalSqliteStorage(DagsterSqliteStorage):
    """Dagster's sqlite storage (same layout under ``base_dir``) with the kept-engine event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None,
                 open_shards: int = DEFAULT_OPEN_SHARDS):
        super().__init__(base_dir, inst_data)
        self._event_log_storage = KeptEngineSqliteEventLogStorage(_event_logs_directory(base_dir),
                                                                  open_shards=open_shards)

    @classmethod
    def config_type(cls):
        return KeptEngineSqliteEventLogStorage.config_type() | {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]):
        # without base_dir: $DAGSTER_HOME, else the project's local instance. `dg` and `dagster
        # dev` started with no DAGSTER_HOME build a temporary instance from this directory's
        # dagster.yaml; their runs then land where `make ui` shows them, instead of failing on
        # an unset variable
        return cls.from_local(inst_data=inst_data, **config_value | {"base_dir": config_value.get("base_dir")
                                                                      or local_dagster_home()})

    @classmethod
    def from_local(cls, base_dir: str, inst_data: ConfigurableClassData | None = None,
                   open_shards: int = DEFAULT_OPEN_SHARDS):
        os.makedirs(base_dir, exist_ok=True)
        return cls(base_dir, inst_data=inst_data, open_shards=open_shards)


class PooledPostgresStorage(DagsterPostgresStorage):
    """dagster-postgres' storage (same config, same tables) whose run, event-log and schedule
    storages each keep a pooled connection, as dagster-webserver sets them up for itself."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage.optimize_for_webserver(statement_timeout=NO_STATEMENT_TIMEOUT,
                                           pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=POOL_MAX_OVERFLOW)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]):
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
