"""The shared store on PostgreSQL: several gateways and one review desk (issue 18).

psycopg 3 with its async pool, one pool per worker process. The queries are the ones the
SQLite store runs (`?` placeholders become psycopg's, LIKE becomes the case-blind ILIKE that
SQLite's LIKE already is); rows read like sqlite3's. Every commit waits for the server's
write-ahead log to reach its disk (synchronous_commit = on): a hold committed here is as
durable as the fsync'd file the SQLite store writes, before the 250 that follows it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import RowMaker
from psycopg_pool import AsyncConnectionPool

from mailguard.store.backend import Args

POOL_SIZE = 4          # connections per worker process: the event loop never waits long
COUNTERS = 4           # connections for the hourly counts, per worker
CONNECT_TIMEOUT = 10   # seconds to reach the server at start
WAIT = 5               # seconds a query waits for a connection: then 451, and the sender retries
RECONNECT = 10         # seconds the pool keeps trying one way to reconnect before starting over


class Row(tuple):
    """A result row: by position, by column name, and as a mapping (`dict(row)`)."""

    _names: dict[str, int]

    def __new__(cls, values: Iterable[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _rows(cursor: psycopg.AsyncCursor[Any]) -> RowMaker[Row]:
    names = {c.name: i for i, c in enumerate(cursor.description or ())}
    return functools.partial(Row, names=names)  # type: ignore[return-value]


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?|%")


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """The SQLite-style query in psycopg's form: `?` → `%s` and `%` → `%%` outside string
    literals (a literal's own `%` doubled too, as psycopg wants), LIKE → ILIKE."""
    def one(m: re.Match[str]) -> str:
        text = m.group(0)
        if text == "?":
            return "%s"
        return text.replace("%", "%%")
    return re.sub(r"\bLIKE\b", "ILIKE", _PLACEHOLDER.sub(one, sql))


def _args(args: Args) -> tuple[Any, ...]:
    """Flags go in as the integers the schema keeps them as (psycopg would send booleans)."""
    return tuple(int(a) if isinstance(a, bool) else a for a in args)


class _PgQueries:
    dialect = "postgresql"

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def all(self, sql: str, args: Args = ()) -> list[Any]:
        cur = await self.conn.execute(translate(sql), _args(args))
        return await cur.fetchall()

    async def one(self, sql: str, args: Args = ()) -> Any | None:
        cur = await self.conn.execute(translate(sql), _args(args))
        return await cur.fetchone()

    async def run(self, sql: str, args: Args = ()) -> int:
        cur = await self.conn.execute(translate(sql), _args(args))
        return cur.rowcount

    async def run_many(self, sql: str, rows: Iterable[Args]) -> None:
        async with self.conn.cursor() as cur:
            await cur.executemany(translate(sql), [_args(r) for r in rows])

    @staticmethod
    def day(column: str) -> str:
        """The calendar day of a Unix timestamp column in the session's zone (the gateway's
        own, set at connect), as YYYY-MM-DD: what SQLite's 'localtime' gives."""
        return f"to_char(to_timestamp({column}), 'YYYY-MM-DD')"


class PostgresStore:
    """The pool, and the same calls as SqliteStore. Each call takes a connection for itself;
    a transaction keeps one for its statements."""

    dialect = "postgresql"
    day = staticmethod(_PgQueries.day)

    def __init__(self, pool: AsyncConnectionPool, counters: AsyncConnectionPool | None = None
                 ) -> None:
        self.pool = pool
        self.counters = counters

    @classmethod
    async def open(cls, conninfo: str, password: str | None = None,
                   size: int = POOL_SIZE) -> PostgresStore:
        kwargs: dict[str, Any] = {
            "row_factory": _rows,
            "options": f"-c synchronous_commit=on -c TimeZone={local_zone()}",
            "connect_timeout": CONNECT_TIMEOUT,
            "application_name": "mailguard"}
        if password is not None:
            kwargs["password"] = password
        # Each connection is tried before it is lent (check): after the server restarts, a
        # connection it dropped is replaced, not handed to a hold that then fails. A pool
        # that cannot connect backs off, doubling its wait; giving up after RECONNECT makes
        # the next query start afresh, so service resumes within seconds of the server.
        pool = AsyncConnectionPool(conninfo, kwargs=kwargs, min_size=1, max_size=size,
                                   open=False, timeout=WAIT, reconnect_timeout=RECONNECT,
                                   check=AsyncConnectionPool.check_connection)
        # Counters (the hourly limit) are one statement each, committed as it runs and not
        # waiting for the disk: their own few connections, in autocommit and without the
        # check, so a message costs one round trip. After a restart a dropped connection
        # fails one count (that message is deferred) and is replaced.
        counters = AsyncConnectionPool(
            conninfo, kwargs={**kwargs, "autocommit": True, "options":
                              f"-c synchronous_commit=off -c TimeZone={local_zone()}"},
            min_size=1, max_size=COUNTERS, open=False, timeout=WAIT,
            reconnect_timeout=RECONNECT)
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
            await counters.open(wait=False)
        except BaseException:   # its workers would go on trying to connect
            await pool.close()
            await counters.close()
            raise
        return cls(pool, counters)

    async def count(self, sql: str, args: Args = ()) -> Any | None:
        """One counter statement, committed at once without waiting for the disk: a count,
        not mail (as rates.db is written without fsync)."""
        assert self.counters is not None
        async with self.counters.connection() as conn:
            return await _PgQueries(conn).one(sql, args)

    async def all(self, sql: str, args: Args = ()) -> list[Any]:
        async with self.pool.connection() as conn:
            return await _PgQueries(conn).all(sql, args)

    async def one(self, sql: str, args: Args = ()) -> Any | None:
        async with self.pool.connection() as conn:
            return await _PgQueries(conn).one(sql, args)

    async def run(self, sql: str, args: Args = ()) -> int:
        async with self.pool.connection() as conn:   # commits as it gives the connection back
            return await _PgQueries(conn).run(sql, args)

    async def run_many(self, sql: str, rows: Iterable[Args]) -> None:
        async with self.pool.connection() as conn:
            await _PgQueries(conn).run_many(sql, rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PgQueries]:
        async with self.pool.connection() as conn, conn.transaction():
            yield _PgQueries(conn)

    async def close(self) -> None:
        await self.pool.close()
        if self.counters is not None:
            await self.counters.close()


def problem(exc: BaseException) -> str | None:
    """What a PostgreSQL failure means for IT, in words; None when `exc` is not one."""
    if not isinstance(exc, psycopg.Error):
        return None
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    if isinstance(exc, psycopg.OperationalError):
        return (f"the shared store (PostgreSQL) cannot be reached or used ({reason}). Check "
                "that the server is running and that this node can reach it ([storage] url); "
                "meanwhile the gateway answers new mail with 451, so senders' servers keep it "
                "and retry: nothing is lost.")
    return f"the shared store (PostgreSQL) refused a query ({reason}). Ask IT to look at it."


def local_zone() -> str:
    """This machine's time zone by its IANA name (TZ, /etc/timezone, the /etc/localtime
    link), so days in the desk's figures are the school's days on either store; UTC if none
    is found."""
    if (tz := os.environ.get("TZ", "").lstrip(":")) and "/" in tz:
        return tz
    try:
        if (name := Path("/etc/timezone").read_text().strip()):
            return name
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"
