"""A small SQLite file of counts that every worker process shares (rates.db, attempts.db).

Counters, not mail: WAL without fsync, so a crash forgets at most the last moments of
counting. Each process opens its own connection on first use (a forked worker never reuses
its parent's), and a lock serialises the threads of one process.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

WAIT_MS = 2000   # another worker holding the file longer than this is an error to the caller


class CounterFile:
    """The shared file at `path`, with the tables of `SCHEMA` (set by each kind of count)."""

    SCHEMA = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=WAIT_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.executescript(self.SCHEMA)
            self._db, self._pid = db, os.getpid()
        return self._db
