"""Failed SMTP sign-ins per network address and per user, in one small SQLite file that every
worker shares: with N workers a guesser still gets `limit` tries in the window, not N times.

Like rates.db it is a counter, not mail: written without fsync, kept beside the store so a
restart does not hand a guesser a fresh allowance. A file that cannot be read refuses the
sign-in (454, try later): a broken counter must not become an open door.
"""

from __future__ import annotations

from pathlib import Path

from mailguard.store.counterfile import CounterFile

TABLES = """
CREATE TABLE IF NOT EXISTS failures (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_key ON failures(key, at);
"""


class Attempts(CounterFile):
    """One process's handle on the shared failures; opened on first use, once per process."""

    SCHEMA = TABLES

    def __init__(self, path: Path, limit: int = 5, window: float = 900) -> None:
        super().__init__(path)
        self.limit, self.window = limit, window

    def wait(self, keys: list[str], now: float) -> int:
        """Seconds until another try is allowed for all of `keys` (0: go ahead). Raises
        sqlite3.Error when the file cannot be read."""
        waits = [0]
        with self._lock:
            db = self._conn()
            for key in keys:
                count, oldest = db.execute(
                    "SELECT count(*), min(at) FROM failures WHERE key = ? AND at > ?",
                    (key, now - self.window)).fetchone()
                if count >= self.limit:
                    waits.append(int(oldest + self.window - now) + 1)
        return max(waits)

    def failed(self, keys: list[str], now: float) -> None:
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT INTO failures VALUES (?, ?)", [(k, now) for k in keys])
                db.execute("DELETE FROM failures WHERE at <= ?", (now - self.window,))
            finally:
                db.execute("COMMIT")

    def succeeded(self, keys: list[str]) -> None:
        """The account's own count is cleared; the address keeps its record, so a guesser
        who knows one password cannot reset the count for the others."""
        with self._lock:
            self._conn().executemany("DELETE FROM failures WHERE key = ?",
                                     [(k,) for k in keys[1:]])
