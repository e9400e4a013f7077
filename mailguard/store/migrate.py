"""The PostgreSQL store's schema, versioned in the repo (migrations/postgresql/NNN_*.sql) and
brought up to date once per database, whichever node gets there first: the others wait on an
advisory lock and then find nothing left to do. (The SQLite store keeps its own version in
`PRAGMA user_version`, brought up to date when it is opened: store/db.py.)"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mailguard.store.postgres import PostgresStore

FOLDER = Path(__file__).parent / "migrations" / "postgresql"
LOCK = 0x6D61696C67   # pg_advisory_xact_lock key: "mailg"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def known() -> list[Migration]:
    out = []
    for path in sorted(FOLDER.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        out.append(Migration(int(number), name, path))
    return out


async def migrate(store: PostgresStore) -> list[Migration]:
    """Apply what this database lacks, in order, in one transaction; what was applied."""
    applied = []
    async with store.transaction() as tx:
        await tx.one("SELECT pg_advisory_xact_lock(?)", (LOCK,))
        await tx.run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                     " name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)")
        have = {r[0] for r in await tx.all("SELECT version FROM schema_migrations")}
        for m in known():
            if m.version in have:
                continue
            await tx.conn.execute(m.path.read_text().encode())  # several statements, no args
            await tx.run("INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
                         (m.version, m.name, time.time()))
            applied.append(m)
    return applied


async def status(store: PostgresStore) -> tuple[list[int], list[Migration]]:
    """(versions applied, migrations still to apply)."""
    row = await store.one("SELECT to_regclass('schema_migrations') IS NOT NULL")
    have = [r[0] for r in await store.all("SELECT version FROM schema_migrations ORDER BY 1")] \
        if row and row[0] else []
    return have, [m for m in known() if m.version not in have]
