"""The store's one interface, whichever database is behind it: SQLite in the data folder (one
machine, the default) or PostgreSQL (several gateways and one desk, issue 18).

Queries are written once, with `?` placeholders, in the SQL both engines read; what differs
(a day from a timestamp, case-blind LIKE) is asked of the store. Each `run` is its own
transaction; several statements that must land together go in `transaction()`. Rows read
like sqlite3's: by position, by column name, and as a mapping (`dict(row)`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import aiosqlite

Args = Sequence[Any]


def errors() -> tuple[type[Exception], ...]:
    """What a store raises when it cannot do what it was asked (a full disk, a locked file, a
    PostgreSQL server out of reach): the caller answers 451 or says so, never a trace.
    psycopg's errors only once it is loaded (by the shared store): a gateway on SQLite never
    loads it, which keeps 23 MB off every process."""
    pg = sys.modules.get("psycopg")
    return (sqlite3.Error, pg.Error) if pg is not None else (sqlite3.Error,)


class Queries(Protocol):
    """What a store and an open transaction both answer."""

    dialect: str

    async def all(self, sql: str, args: Args = ()) -> list[Any]: ...
    async def one(self, sql: str, args: Args = ()) -> Any | None: ...
    async def run(self, sql: str, args: Args = ()) -> int: ...
    async def run_many(self, sql: str, rows: Iterable[Args]) -> None: ...
    def day(self, column: str) -> str: ...


class Store(Queries, Protocol):
    def transaction(self) -> Any: ...   # async context manager yielding Queries
    async def close(self) -> None: ...


class _SqliteQueries:
    """Statements on the one SQLite connection; committing is the caller's (Store.run or the
    transaction's end)."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def all(self, sql: str, args: Args = ()) -> list[Any]:
        async with self.conn.execute(sql, args) as cur:
            return list(await cur.fetchall())

    async def one(self, sql: str, args: Args = ()) -> Any | None:
        async with self.conn.execute(sql, args) as cur:
            return await cur.fetchone()

    async def run(self, sql: str, args: Args = ()) -> int:
        cur = await self.conn.execute(sql, args)
        return cur.rowcount

    async def run_many(self, sql: str, rows: Iterable[Args]) -> None:
        await self.conn.executemany(sql, rows)

    @staticmethod
    def day(column: str) -> str:
        """The local calendar day of a Unix timestamp column, as YYYY-MM-DD."""
        return f"date({column}, 'unixepoch', 'localtime')"


class SqliteStore(_SqliteQueries):
    """One aiosqlite connection per process. A lock keeps one writer's statements together:
    a `run` from another task must not commit half of an open transaction."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__(conn)
        self._lock = asyncio.Lock()

    async def run(self, sql: str, args: Args = ()) -> int:
        async with self._lock:
            try:
                cur = await self.conn.execute(sql, args)
                await self.conn.commit()
            except BaseException:
                await self.conn.rollback()
                raise
            return cur.rowcount

    async def run_many(self, sql: str, rows: Iterable[Args]) -> None:
        async with self._lock:
            try:
                await self.conn.executemany(sql, rows)
                await self.conn.commit()
            except BaseException:
                await self.conn.rollback()
                raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteQueries]:
        async with self._lock:
            try:
                yield _SqliteQueries(self.conn)
                await self.conn.commit()
            except BaseException:
                await self.conn.rollback()
                raise

    async def close(self) -> None:
        await self.conn.close()
