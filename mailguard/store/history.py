"""Who each sender has written to, without a log of who wrote to whom: each sender–recipient
pair is kept only as a keyed hash (HMAC-SHA256 under the instance secret, cut to 16 bytes),
with the day it was first and last seen, and pruned with the events
(`event_retention_days`). No address is stored in clear; without the secret the rows say
nothing, and with it one can only test a pair one already knows.

The misdirected check asks it two things: has this sender written to this address before,
and how much history does this sender have at all (a new member of staff has written to
no one yet, so "never written to" says nothing about them). Every worker keeps the pairs in
memory (8 bytes of each hash; 100,000 pairs is about 6 MB) so the check is a set lookup;
what a worker sees is written in batches, and each worker reads the pairs other workers
and nodes wrote every minute.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import structlog

from mailguard.store.backend import Store

log = structlog.get_logger("mailguard.history")

DAY = 86400
FLUSH = 1.0       # seconds between writes of what was seen
REFRESH = 60.0    # seconds between reads of what other nodes saw (shared store)
KEPT = 100_000    # pairs waiting in memory while the store cannot take them
# Characters an address's local part is typed with: the one-slip neighbours of a new
# recipient are tried against the history (look-alikes of a recent contact).
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789.-_"
UPSERT = ("INSERT INTO history (pair, sender, first_seen, last_seen) VALUES (?, ?, ?, ?) "
          "ON CONFLICT (pair) DO UPDATE SET "
          "first_seen = CASE WHEN excluded.first_seen < history.first_seen "
          "THEN excluded.first_seen ELSE history.first_seen END, "
          "last_seen = CASE WHEN excluded.last_seen > history.last_seen "
          "THEN excluded.last_seen ELSE history.last_seen END")


def history_key(secret: bytes) -> bytes:
    """The history's own key, derived from the instance secret (server.stamp_secret_file,
    shared by every node): the stamp and the history never use the same key."""
    return hmac.new(secret, b"mailguard recipient history v1", hashlib.sha256).digest()


class History:
    def __init__(self, key: bytes = b"") -> None:
        self.key = key
        self.db: Store | None = None
        self._pairs: set[int] = set()
        self._senders: Counter[int] = Counter()
        self._today: dict[bytes, int] = {}               # pair → day already queued
        self._day = 0
        self.pending: dict[bytes, tuple[bytes, int, int]] = {}
        self._seen_up_to = 0                              # the last day read from the store
        self._tasks: list[asyncio.Task[None]] = []
        self._flushing = asyncio.Lock()

    def _mac(self, text: str) -> bytes:
        return hmac.digest(self.key, text.encode(), "sha256")[:16]   # one call, in C

    def pair(self, sender: str, recipient: str) -> bytes:
        return self._mac(sender.lower() + "\0" + recipient.lower())

    def sender(self, sender: str) -> bytes:
        return self._mac(sender.lower() + "\0")

    # -- what the check asks -----------------------------------------------------------------

    def known(self, sender: str, recipient: str) -> bool:
        return _short(self.pair(sender, recipient)) in self._pairs

    def contacts(self, sender: str) -> int:
        """How many recipients this sender has history with."""
        return self._senders[_short(self.sender(sender))]

    def near(self, sender: str, recipient: str) -> bool:
        """Whether one slip (a letter left out, added, changed or two swapped) in the local
        part turns this recipient into one the sender has written to. Only the sender's
        own history can answer, hash by hash: about a thousand tries for a new address."""
        if not self.contacts(sender):
            return False
        local, _, domain = recipient.lower().rpartition("@")
        prefix = sender.lower() + "\0"
        key, pairs, digest = self.key, self._pairs, hmac.digest
        for variant in _one_slip(local):
            if variant != local and int.from_bytes(digest(
                    key, f"{prefix}{variant}@{domain}".encode(), "sha256")[:8], "big") in pairs:
                return True
        return False

    # -- what the pipeline tells it ----------------------------------------------------------

    def saw(self, sender: str, recipients: Iterable[str], ts: float | None = None) -> None:
        """Mail from `sender` was delivered to `recipients`."""
        if not sender:
            return
        day = int((ts or time.time()) // DAY)
        if day != self._day:
            self._today.clear()
            self._day = day
        who = self.sender(sender)
        for rcpt in recipients:
            pair = self.pair(sender, rcpt)
            if self._today.get(pair) == day:
                continue   # already queued or written today
            self._today[pair] = day
            self._add(pair, who)
            _, first, last = self.pending.get(pair, (who, day, day))
            self.pending[pair] = (who, min(first, day), max(last, day))
            if len(self.pending) > KEPT:
                self.pending.pop(next(iter(self.pending)))

    def _add(self, pair: bytes, who: bytes) -> None:
        short = _short(pair)
        if short not in self._pairs:
            self._pairs.add(short)
            self._senders[_short(who)] += 1

    # -- the store ---------------------------------------------------------------------------

    async def attach(self, db: Store, key: bytes) -> None:
        """Use this worker's store, and read what it holds."""
        self.db, self.key = db, key
        self._pairs.clear()
        self._senders.clear()
        await self._read(0)

    async def _read(self, since_day: int) -> None:
        assert self.db is not None
        rows = await self.db.all("SELECT pair, sender, last_seen FROM history "
                                 "WHERE last_seen >= ?", (since_day,))
        for pair, who, last in rows:
            self._add(bytes(pair), bytes(who))
            self._seen_up_to = max(self._seen_up_to, int(last))

    async def flush(self) -> None:
        async with self._flushing:
            if not self.pending or self.db is None:
                return
            rows, self.pending = self.pending, {}
            try:
                await self.db.run_many(UPSERT, [(p, w, f, last) for p, (w, f, last)
                                                in rows.items()])
            except BaseException:
                self.pending = {**rows, **self.pending}
                raise

    async def prune(self, before: float) -> int:
        """Forget pairs last seen before `before` (the events' retention), and read the
        store again: another node may have pruned first (hourly, 0.1 s for 100,000 pairs)."""
        assert self.db is not None
        await self.flush()
        n = await prune(self.db, before)
        await self.attach(self.db, self.key)
        return n

    async def _loop(self, every: float, job: Any) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await job()
            except Exception as e:   # the store is away: what was seen waits in memory
                log.error("history_write_failed", error=str(e))

    def start(self, refresh: bool = True) -> None:
        self._tasks.append(asyncio.create_task(self._loop(FLUSH, self.flush)))
        if refresh:   # other workers' and nodes' pairs, from the day before the last read
            self._tasks.append(asyncio.create_task(self._loop(
                REFRESH, lambda: self._read(self._seen_up_to - 1))))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        try:
            await self.flush()
        except Exception as e:
            log.error("history_rows_lost", rows=len(self.pending), error=str(e))
        self.db = None   # a new start attaches (and reads) its own store


async def count(db: Store) -> tuple[int, int]:
    """(pairs, senders) the store holds."""
    row = await db.one("SELECT count(*), count(DISTINCT sender) FROM history")
    return int(row[0]), int(row[1])


async def prune(db: Store, before: float) -> int:
    """Delete the pairs last seen before `before`; how many went."""
    day = int(before // DAY)
    async with db.transaction() as tx:
        (n,) = await tx.one("SELECT count(*) FROM history WHERE last_seen < ?", (day,))
        if n:
            await tx.run("DELETE FROM history WHERE last_seen < ?", (day,))
    return int(n)


def _short(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big")


def _one_slip(local: str) -> Iterable[str]:
    n = len(local)
    for i in range(n):
        yield local[:i] + local[i + 1:]                              # a letter left out
        if i + 1 < n:
            yield local[:i] + local[i + 1] + local[i] + local[i + 2:]  # two swapped
        for c in ALPHABET:
            yield local[:i] + c + local[i + 1:]                      # one changed
    for i in range(n + 1):
        for c in ALPHABET:
            yield local[:i] + c + local[i:]                          # one added
