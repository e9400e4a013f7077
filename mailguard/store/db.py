"""Opens the SQLite database (WAL, synchronous=FULL) and keeps its schema."""

from __future__ import annotations

import os
from pathlib import Path

import aiosqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, ts REAL NOT NULL, client TEXT, helo TEXT, auth_user TEXT,
    sender TEXT, rcpt_count INTEGER, rcpt_domains TEXT, refused_count INTEGER, size INTEGER,
    verdict TEXT NOT NULL, checks TEXT, upstream TEXT, latency_ms REAL, quarantine_id TEXT,
    tls INTEGER, stamped INTEGER
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS quarantine (
    id TEXT PRIMARY KEY, ts REAL NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
    sender TEXT, recipients TEXT NOT NULL, held_recipients TEXT NOT NULL, client TEXT,
    auth_user TEXT, size INTEGER, findings TEXT NOT NULL, file TEXT NOT NULL,
    updated REAL, note TEXT, last_reply TEXT, subject_hint TEXT
);
CREATE INDEX IF NOT EXISTS quarantine_status ON quarantine(status, ts);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, quarantine_id TEXT, detail TEXT
);
"""


def prepare_data_dir(data_dir: Path) -> None:
    """The data folder holds held mail: only mailguard's own user may enter it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)


async def connect(data_dir: Path) -> aiosqlite.Connection:
    prepare_data_dir(data_dir)
    db = await aiosqlite.connect(data_dir / "mailguard.db", timeout=30)
    db.row_factory = aiosqlite.Row
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=FULL")
    await db.execute("PRAGMA busy_timeout=30000")
    await db.executescript(SCHEMA)
    await db.commit()
    return db
