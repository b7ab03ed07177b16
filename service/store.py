"""Where the audit trail lives: an embedded SQLite file (the default, no set-up) or a
PostgreSQL database shared by several service instances. Both hold the same tables
(meta, audit, cards, jti) and give the audit log one transaction per call; the chain's
order comes from a lock on the head row, so concurrent writers (threads, worker
processes, instances on other machines) leave no gap and no fork.

Why psycopg 3 for PostgreSQL: the maintained driver of the PostgreSQL adapter project
(psycopg2's successor), with real server-side parameters, explicit transactions and a
binary wheel that bundles libpq; imported only when an `audit: postgresql://` is used.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

from ..engine.errors import InputError

COLUMNS = ("time", "kind", "service", "request_id", "status", "ruleset_name",
           "ruleset_version", "ruleset_sha256", "engine_sha256", "input_sha256",
           "patient_hash", "recommendation", "cards", "feedback", "detail")
_TABLES = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit (seq BIGINT PRIMARY KEY, "
    + ", ".join(f"{c} TEXT NOT NULL" for c in COLUMNS)
    + ", prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS audit_patient ON audit (patient_hash, time)",
    "CREATE TABLE IF NOT EXISTS cards (uuid TEXT PRIMARY KEY, seq BIGINT NOT NULL, "
    "service TEXT NOT NULL, patient_hash TEXT NOT NULL, suggestions TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS jti (key TEXT PRIMARY KEY, until DOUBLE PRECISION NOT NULL)",
]


class Store:
    """One database connection; `transaction()` yields a cursor whose `run(sql, args)`
    takes '?' placeholders on both backends."""

    kind = "store"

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def quick(self) -> contextlib.AbstractContextManager[Any]:
        return self.transaction()

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.transaction() as tx:
            return tx.run(sql, args).fetchall()

    def has_tables(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Tx:
    def __init__(self, cursor: Any, qmark: bool) -> None:
        self.cursor, self.qmark = cursor, qmark

    def run(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        self.cursor.execute(sql if self.qmark else sql.replace("?", "%s"), args)
        return self.cursor

    def lock_head(self) -> Any:
        """The head row, locked until commit (SQLite: BEGIN IMMEDIATE already holds the
        write lock; PostgreSQL: FOR UPDATE on the row)."""
        return self.run("SELECT value FROM meta WHERE key='head'"
                        + ("" if self.qmark else " FOR UPDATE")).fetchone()


class SQLiteStore(Store):
    kind = "sqlite"

    def __init__(self, path: Path | str, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.read_only = read_only
        if read_only:
            if not self.path.is_file():
                raise InputError("no audit database here", str(path))
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                       check_same_thread=False, isolation_level=None)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                   isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for sql in _TABLES:
            self._db.execute(sql)
        # Seen token ids need no fsync per token (a power cut forgets at most the
        # last seconds' ids, each good for minutes only): their own connection, so the
        # audit rows keep synchronous=FULL. Saves ~3.5 ms a request on this disk.
        self._fast_db = sqlite3.connect(str(self.path), check_same_thread=False,
                                        isolation_level=None, timeout=30)
        self._fast_db.execute("PRAGMA synchronous=NORMAL")
        self._fast_lock = threading.Lock()
        if os.name == "posix":
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Tx]:
        with self._lock:
            self._db.execute("BEGIN" if self.read_only else "BEGIN IMMEDIATE")
            try:
                yield _Tx(self._db.cursor(), True)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def quick(self) -> Iterator[_Tx]:
        """A transaction that need not reach the disk before it returns."""
        with self._fast_lock:
            self._fast_db.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(self._fast_db.cursor(), True)
                self._fast_db.execute("COMMIT")
            except BaseException:
                self._fast_db.execute("ROLLBACK")
                raise

    def has_tables(self) -> bool:
        names = {r[0] for r in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        return {"meta", "audit"} <= names

    def close(self) -> None:
        self._db.close()
        if not self.read_only:
            self._fast_db.close()


class PostgresStore(Store):
    kind = "postgresql"

    def __init__(self, url: str, read_only: bool = False) -> None:
        try:
            import psycopg
        except ImportError:
            raise InputError("audit: postgresql:// needs the psycopg package "
                             "(pip install 'cledecide[postgres]')") from None
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise InputError("cannot connect to the PostgreSQL audit database: "
                             f"{type(exc).__name__}") from None
        self._lock = threading.Lock()
        if read_only:
            self._db.execute("SET default_transaction_read_only = on")
        else:
            with self.transaction() as tx:
                tx.run("SELECT pg_advisory_xact_lock(7226001)")  # one creator at a time
                for sql in _TABLES:
                    tx.run(sql)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Tx]:
        with self._lock, self._db.transaction():
            yield _Tx(self._db.cursor(), False)

    @contextlib.contextmanager
    def quick(self) -> Iterator[_Tx]:
        with self.transaction() as tx:
            tx.run("SET LOCAL synchronous_commit TO OFF")
            yield tx

    def has_tables(self) -> bool:
        found = self.read("SELECT count(*) FROM information_schema.tables WHERE "
                          "table_schema = current_schema() AND table_name IN ('meta', 'audit')")
        return found[0][0] == 2

    def close(self) -> None:
        self._db.close()


def open_store(target: str | Path, read_only: bool = False) -> Store:
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStore(text, read_only)
    return SQLiteStore(text, read_only)
