"""Recipients per sender in the last hour, counted in one small SQLite file that every worker
process shares: with N workers a sender still gets the limit once, not N times.

Counts are kept per minute (one row per sender per minute, at most 60 summed per message), so
a check costs the same at the 5th message as at the 5,000th. The file is a counter, not mail:
it is written without fsync (a crash forgets at most the last moments of counting) and lives
beside the store in the data folder, so a restart does not reset a runaway account.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from mailguard.store.backend import errors
from mailguard.store.counterfile import CounterFile

TABLES = """
CREATE TABLE IF NOT EXISTS sent (
    sender TEXT NOT NULL, minute INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (sender, minute)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS told (sender TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
"""
HOUR = 3600


class CountUnreadable(Exception):
    """The shared hourly count could not be read: the limits check defers the message."""


class Rates(CounterFile):
    """One process's handle on the shared counts; opened on first use, once per process."""

    SCHEMA = TABLES

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._pruned = 0

    async def admit(self, sender: str, count: int, limit: int, now: float) -> int | None:
        """Count `count` more recipients for the sender if the hour's total stays within
        `limit`; otherwise count nothing and return how many they have sent this hour."""
        minute = int(now // 60)
        with self._lock:
            try:
                db = self._conn()
                db.execute("BEGIN IMMEDIATE")
                try:
                    (total,) = db.execute(
                        "SELECT coalesce(sum(n), 0) FROM sent WHERE sender = ? AND minute > ?",
                        (sender, minute - HOUR // 60)).fetchone()
                    if total + count > limit:
                        return int(total)
                    db.execute("INSERT INTO sent VALUES (?, ?, ?) ON CONFLICT (sender, minute) "
                               "DO UPDATE SET n = n + excluded.n", (sender, minute, count))
                    if minute != self._pruned:   # once a minute per process: drop the old rows
                        db.execute("DELETE FROM sent WHERE minute <= ?", (minute - HOUR // 60,))
                        self._pruned = minute
                    return None
                finally:
                    db.execute("COMMIT")
            except sqlite3.Error as e:
                raise CountUnreadable(f"the hourly count in {self.path} could not be read: {e}"
                                  ) from None

    async def first_notice(self, sender: str, now: float) -> bool:
        """Whether IT is to be told of this sender's burst: once per sender per hour, across
        every worker (the first to ask in the hour gets True)."""
        with self._lock:
            try:
                cur = self._conn().execute(
                    "INSERT INTO told VALUES (?, ?) ON CONFLICT (sender) DO UPDATE "
                    "SET at = excluded.at WHERE told.at <= ?", (sender, now, now - HOUR))
                return cur.rowcount > 0
            except sqlite3.Error:
                return True   # better a second notice than none


class SharedRates:
    """The same counts in the shared PostgreSQL store, so N nodes enforce one limit, in one
    statement a message: the message is added to its minute's row first, and the row's new
    value (taken under the row's lock, so two nodes adding at once are counted in turn) plus
    the hour's earlier minutes is the total. Past the limit the addition is taken back. Two
    nodes at the very edge of the limit may both be refused where one would have fitted;
    neither can pass it. The store is the gateway's own (attached at start, per event loop),
    or one opened for a command that checks mail."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage   # StorageSettings
        self._stores: dict[asyncio.AbstractEventLoop, Any] = {}
        self._pruned = 0

    def attach(self, store: Any) -> None:
        self._stores[asyncio.get_running_loop()] = store

    async def _store(self) -> Any:
        loop = asyncio.get_running_loop()
        if (store := self._stores.get(loop)) is None:
            from mailguard.store.opening import open_store

            store = self._stores[loop] = await open_store(self.storage)
        return store

    async def admit(self, sender: str, count: int, limit: int, now: float) -> int | None:
        minute = int(now // 60)
        try:
            store = await self._store()
            (total,) = await store.count(
                "WITH added AS (INSERT INTO sent VALUES (?, ?, ?) ON CONFLICT (sender, minute) "
                "DO UPDATE SET n = sent.n + excluded.n RETURNING n) "
                "SELECT (SELECT n FROM added) + coalesce((SELECT sum(n) FROM sent "
                "WHERE sender = ? AND minute > ? AND minute <> ?), 0)",
                (sender, minute, count, sender, minute - HOUR // 60, minute))
            if total > limit:
                await store.count("UPDATE sent SET n = n - ? WHERE sender = ? AND minute = ? "
                                  "RETURNING n", (count, sender, minute))
                return int(total) - count
            if minute != self._pruned:   # once a minute per process: drop the old rows
                self._pruned = minute
                await store.count("WITH gone AS (DELETE FROM sent WHERE minute <= ? "
                                  "RETURNING 1) SELECT count(*) FROM gone",
                                  (minute - HOUR // 60,))
            return None
        except errors() as e:
            raise CountUnreadable(f"the hourly count in the shared store could not be read: "
                                  f"{' '.join(str(e).split())[:200]}") from None

    async def first_notice(self, sender: str, now: float) -> bool:
        try:
            store = await self._store()
            return await store.count(
                "INSERT INTO told VALUES (?, ?) ON CONFLICT (sender) DO UPDATE "
                "SET at = excluded.at WHERE told.at <= ? RETURNING 1", (sender, now, now - HOUR)
            ) is not None
        except errors():
            return True   # better a second notice than none
