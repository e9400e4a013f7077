"""Who looked at or acted on held mail, and when: every read and action leaves a row."""

from __future__ import annotations

import getpass
import time
from typing import Any

import aiosqlite


def current_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def record(db: aiosqlite.Connection, actor: str, action: str, quarantine_id: str | None,
                 detail: str = "") -> None:
    await db.execute(
        "INSERT INTO audit (ts, actor, action, quarantine_id, detail) VALUES (?, ?, ?, ?, ?)",
        (time.time(), actor, action, quarantine_id, detail))
    await db.commit()


async def trail(db: aiosqlite.Connection, quarantine_id: str | None = None) -> list[dict[str, Any]]:
    sql, args = "SELECT * FROM audit ORDER BY seq", ()
    if quarantine_id:
        sql, args = "SELECT * FROM audit WHERE quarantine_id = ? ORDER BY seq", (quarantine_id,)
    async with db.execute(sql, args) as cur:
        return [dict(r) for r in await cur.fetchall()]
