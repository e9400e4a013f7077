"""Who looked at or acted on held mail, and when: every read and action leaves a row."""

from __future__ import annotations

import getpass
import time
from typing import Any

from mailguard.store.backend import Queries
from mailguard.store.db import conditions


def current_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def record(db: Queries, actor: str, action: str, quarantine_id: str | None,
                 detail: str = "", address: str | None = None) -> None:
    """One row: who (`actor`), from which network address (the desk's client; None on the
    command line), did what, to which held message."""
    await db.run(
        "INSERT INTO audit (ts, actor, action, quarantine_id, detail, address) "
        "VALUES (?, ?, ?, ?, ?, ?)", (time.time(), actor, action, quarantine_id, detail, address))


async def trail(db: Queries, quarantine_id: str | None = None) -> list[dict[str, Any]]:
    sql, args = "SELECT * FROM audit ORDER BY seq", ()
    if quarantine_id:
        sql, args = "SELECT * FROM audit WHERE quarantine_id = ? ORDER BY seq", (quarantine_id,)
    return [dict(r) for r in await db.all(sql, args)]


async def search(db: Queries, *, actor: str = "", action: str = "",
                 quarantine_id: str = "", since: float | None = None,
                 until: float | None = None, limit: int | None = 200, offset: int = 0,
                 ) -> tuple[list[dict[str, Any]], int]:
    """Rows matching the auditor's filters, newest first, and how many match in all."""
    clauses, args = conditions(equal={"actor": actor, "action": action,
                                      "quarantine_id": quarantine_id}, since=since, until=until)
    where = " AND ".join(clauses) or "1 = 1"
    (total,) = await db.one(f"SELECT count(*) FROM audit WHERE {where}", args)
    sql = f"SELECT * FROM audit WHERE {where} ORDER BY seq DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    return [dict(r) for r in await db.all(sql, args)], int(total)
