"""Opens the SQLite database (WAL, synchronous=FULL) and keeps its schema."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from mailguard.store.backend import SqliteStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, ts REAL NOT NULL, client TEXT, helo TEXT, auth_user TEXT,
    sender TEXT, rcpt_count INTEGER, rcpt_domains TEXT, refused_count INTEGER, size INTEGER,
    verdict TEXT NOT NULL, checks TEXT, upstream TEXT, latency_ms REAL, quarantine_id TEXT,
    tls INTEGER, stamped INTEGER, source TEXT
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS quarantine (
    id TEXT PRIMARY KEY, ts REAL NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
    sender TEXT, recipients TEXT NOT NULL, held_recipients TEXT NOT NULL, client TEXT,
    auth_user TEXT, size INTEGER, findings TEXT NOT NULL, file TEXT NOT NULL,
    updated REAL, note TEXT, last_reply TEXT, subject_hint TEXT
);
CREATE INDEX IF NOT EXISTS quarantine_status ON quarantine(status, ts);
CREATE INDEX IF NOT EXISTS quarantine_ts ON quarantine(ts);
CREATE TABLE IF NOT EXISTS held_rules (
    qid TEXT NOT NULL, check_name TEXT NOT NULL, rule TEXT NOT NULL, PRIMARY KEY (qid, rule)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS held_rules_check ON held_rules(check_name, qid);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, quarantine_id TEXT, detail TEXT, address TEXT
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts);
CREATE TABLE IF NOT EXISTS reviewers (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, totp TEXT,
    created REAL NOT NULL, generation INTEGER NOT NULL DEFAULT 0, disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS comments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, qid TEXT NOT NULL, ts REAL NOT NULL,
    actor TEXT NOT NULL, text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_qid ON comments(qid);
CREATE TABLE IF NOT EXISTS false_positives (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, qid TEXT NOT NULL, rule TEXT NOT NULL,
    ts REAL NOT NULL, actor TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS false_positives_rule ON false_positives(rule);
CREATE TABLE IF NOT EXISTS notices (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, qid TEXT NOT NULL,
    recipient TEXT NOT NULL, kind TEXT NOT NULL, claimed REAL, tries INTEGER NOT NULL DEFAULT 0,
    digest INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS notices_pending ON notices(claimed, recipient);
CREATE TABLE IF NOT EXISTS history (
    pair BLOB PRIMARY KEY, sender BLOB NOT NULL, first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_last_seen ON history(last_seen);
"""

# Columns added after a store was first made: (table, column, type). Added at connect.
COLUMNS = (("quarantine", "subject", "TEXT"), ("quarantine", "assigned_to", "TEXT"),
           ("quarantine", "safeguarding", "INTEGER NOT NULL DEFAULT 0"),
           ("audit", "address", "TEXT"), ("events", "source", "TEXT"),
           ("quarantine", "plan", "TEXT"), ("events", "node", "TEXT"),
           ("quarantine", "node", "TEXT"), ("quarantine", "checks", "TEXT"))


VERSION = 5   # PRAGMA user_version of a store brought up to date


async def _migrate(db: aiosqlite.Connection) -> None:
    """Bring a store made by an earlier version up to this one, in place, once."""
    async with db.execute("PRAGMA user_version") as cur:
        (version,) = await cur.fetchone()  # type: ignore[misc]
    if version >= VERSION:
        return
    for table, column, kind in COLUMNS:
        async with db.execute(f"PRAGMA table_info({table})") as cur:
            have = {row[1] for row in await cur.fetchall()}
        if column not in have:
            await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    await db.execute(
        "INSERT OR IGNORE INTO held_rules (qid, check_name, rule) "
        "SELECT q.id, substr(json_extract(j.value, '$.rule'), 1, "
        "instr(json_extract(j.value, '$.rule'), '.') - 1), json_extract(j.value, '$.rule') "
        "FROM quarantine q, json_each(q.findings) j")
    await db.execute("CREATE INDEX IF NOT EXISTS quarantine_assigned ON quarantine(assigned_to)")
    await db.execute(   # each message's checks in one column, for the desk's counts
        "UPDATE quarantine SET checks = ',' || coalesce((SELECT group_concat(check_name) FROM "
        "(SELECT DISTINCT check_name FROM held_rules WHERE qid = quarantine.id)), '') || ',' "
        "WHERE checks IS NULL")
    await db.execute("CREATE INDEX IF NOT EXISTS quarantine_status_checks "
                     "ON quarantine(status, checks)")   # the desk's counts, from the index
    # A sender filter is a substring (LIKE '%…%'), which no index can seek; this one holds
    # every sender, so the count reads it alone instead of each message's row (162 -> 18 ms
    # at 100,000 held).
    await db.execute("CREATE INDEX IF NOT EXISTS quarantine_status_sender "
                     "ON quarantine(status, sender)")
    await db.execute(f"PRAGMA user_version = {VERSION}")


def like(text: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') that finds `text` anywhere, wildcards taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def conditions(*, equal: dict[str, Any] | None = None, contains: dict[str, str] | None = None,
               since: float | None = None, until: float | None = None, ts: str = "ts",
               ) -> tuple[list[str], list[Any]]:
    """SQL conditions and their arguments for the filters the desk and CLI offer: exact
    values, text found anywhere, and a time range; empty filters are left out."""
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (equal or {}).items():
        if value:
            clauses.append(f"{column} = ?")
            args.append(value)
    for column, text in (contains or {}).items():
        if text:
            clauses.append(f"{column} LIKE ? ESCAPE '\\'")
            args.append(like(text))
    for op, value in ((">=", since), ("<", until)):
        if value is not None:
            clauses.append(f"{ts} {op} ?")
            args.append(value)
    return clauses, args


def prepare_data_dir(data_dir: Path) -> None:
    """The data folder holds held mail: only mailguard's own user may enter it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)


async def connect(data_dir: Path) -> SqliteStore:
    """The data folder's SQLite store, made or brought up to date."""
    prepare_data_dir(data_dir)
    db = await aiosqlite.connect(data_dir / "mailguard.db", timeout=30)
    try:
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute("PRAGMA busy_timeout=30000")
        await db.executescript(SCHEMA)
        await _migrate(db)
        await db.commit()
    except BaseException:   # its thread would otherwise keep the process from ending
        await db.close()
        raise
    return SqliteStore(db)


def _nearly_full(data_dir: Path) -> bool:
    """SQLite says only "disk I/O error" when it cannot grow its shared-memory file."""
    try:
        return shutil.disk_usage(data_dir).free < 1024 * 1024
    except OSError:
        return False


def problem(exc: BaseException, data_dir: Path) -> str | None:
    """What a store failure means for the person at the keyboard, and what to do; None when
    `exc` is not a storage failure (a bug, which should be reported as one)."""
    from mailguard.store import postgres

    if (words := postgres.problem(exc)) is not None:
        return words
    text = str(exc)
    errno_ = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and exc.filename and data_dir.resolve() not in (
            Path(str(exc.filename)).resolve().parents):
        return f"{exc.filename}: {exc.strerror or text}"
    if not isinstance(exc, (sqlite3.Error, OSError)):
        return None
    if "disk is full" in text or errno_ in (errno.ENOSPC, errno.EDQUOT) or _nearly_full(data_dir):
        return (f"the data folder {data_dir} is full ({text}), so nothing was read or changed. "
                "Free space on that disk (or move [storage] data_dir to a larger one), then "
                "run `mailguard purge` to apply retention. "
                "Meanwhile the gateway answers new mail with 451, so senders' servers keep "
                "it and retry: nothing is lost.")
    if "readonly" in text or errno_ in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"mailguard may not write to its data folder {data_dir} ({text}). Run the "
                "command as the user the gateway runs as (e.g. sudo -u mailguard), or give "
                "that user the folder back.")
    if "locked" in text or "busy" in text:
        return (f"the store in {data_dir} is busy ({text}): another process holds it. Try "
                "again in a moment.")
    if "malformed" in text or "not a database" in text:
        return (f"the store {data_dir / 'mailguard.db'} is damaged ({text}). Stop mailguard "
                "and restore the data folder from its backup (docs/deploy/operations.md).")
    return f"mailguard could not use its store in {data_dir} ({text}). Ask IT to look at it."
