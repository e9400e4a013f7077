"""One event per transaction: envelope facts and rule ids, never bodies or subjects.

Rows are written in small batches (every 200 ms) so logging never sits on the SMTP hot path;
the same fields go to stdout as one JSON line at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from mailguard.store.backend import Store
from mailguard.store.db import conditions

log = structlog.get_logger("mailguard.event")

COLUMNS = ("id", "ts", "client", "helo", "auth_user", "sender", "rcpt_count", "rcpt_domains",
           "refused_count", "size", "verdict", "checks", "upstream", "latency_ms",
           "quarantine_id", "tls", "stamped", "source", "node")
KEPT = 50_000   # events held in memory while the store cannot take them (about 25 MB)
UPDATE = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])   # a message's later event wins


@dataclass(frozen=True)
class Event:
    id: str
    client: str
    verdict: str
    helo: str = ""
    auth_user: str | None = None
    sender: str | None = None
    rcpt_count: int = 0
    rcpt_domains: tuple[str, ...] = ()
    refused_count: int = 0
    size: int = 0
    checks: tuple[str, ...] = ()
    upstream: str = ""
    latency_ms: float = 0.0
    quarantine_id: str | None = None
    tls: bool = False
    stamped: bool = False
    source: str = ""   # which of the config's sources admitted the client
    ts: float = field(default_factory=time.time)
    node: str = ""     # the gateway that saw it (server.node), filled in by the EventLog

    def row(self, node: str = "") -> tuple[Any, ...]:
        d = dict(vars(self))   # flat fields: no need for asdict's deep copy (per message)
        d["rcpt_domains"] = ",".join(self.rcpt_domains)
        d["checks"] = ",".join(self.checks)
        d["node"] = self.node or node
        return tuple(d[c] for c in COLUMNS)


def from_row(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["rcpt_domains"] = [x for x in (d["rcpt_domains"] or "").split(",") if x]
    d["checks"] = [x for x in (d["checks"] or "").split(",") if x]
    d["tls"], d["stamped"] = bool(d["tls"]), bool(d["stamped"])
    return d


class EventLog:
    def __init__(self, db: Store, interval: float = 0.2, node: str = "") -> None:
        self.db = db
        self.node = node
        self._flushing = asyncio.Lock()
        self.pending: list[tuple[Any, ...]] = []
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def record(self, event: Event) -> None:
        d = dict(vars(event))
        d.pop("ts")
        d["node"] = event.node or self.node
        log.info("transaction", **d)
        self.pending.append(event.row(self.node))

    async def flush(self) -> None:
        """Write what is pending. If the store cannot take it (a shared store out of reach,
        a full disk), the rows wait for the next try, the newest KEPT at most: the stdout
        line of each already went out when it was recorded."""
        async with self._flushing:   # one at a time: a flush returns once all is written
            if not self.pending:
                return
            rows, self.pending = self.pending, []
            placeholders = ",".join("?" for _ in COLUMNS)
            try:
                await self.db.run_many(
                    f"INSERT INTO events ({','.join(COLUMNS)}) VALUES ({placeholders}) "
                    f"ON CONFLICT (id) DO UPDATE SET {UPDATE}", rows)
            except BaseException:
                waiting = rows + self.pending
                if len(waiting) > KEPT:
                    log.error("event_log_rows_dropped", rows=len(waiting) - KEPT)
                self.pending = waiting[-KEPT:]
                raise

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception as e:   # the store's own error, whichever database it is
                log.error("event_log_write_failed", error=str(e))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        try:
            await self.flush()
        except Exception as e:   # the store is gone or full: the stdout lines are the record
            log.error("event_log_rows_lost", rows=len(self.pending), error=str(e))

    async def since(self, ts: float) -> list[dict[str, Any]]:
        return [from_row(r) for r in await self.db.all(
            "SELECT * FROM events WHERE ts >= ? ORDER BY ts", (ts,))]

    async def search(self, *, verdict: str = "", sender: str = "", rule: str = "",
                     since: float | None = None, until: float | None = None, limit: int = 100,
                     offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events matching IT's filters, newest first, and how many match in all."""
        clauses, args = conditions(equal={"verdict": verdict},
                                   contains={"sender": sender, "checks": rule},
                                   since=since, until=until)
        where = " AND ".join(clauses) or "1 = 1"
        (total,) = await self.db.one(f"SELECT count(*) FROM events WHERE {where}", args)
        rows = await self.db.all(
            f"SELECT * FROM events WHERE {where} ORDER BY ts DESC LIMIT ? OFFSET ?",
            [*args, limit, offset])
        return [from_row(r) for r in rows], int(total)

    async def purge(self, before: float) -> int:
        return await self.db.run("DELETE FROM events WHERE ts < ?", (before,))


def dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True)
