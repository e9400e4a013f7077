"""The review queue as the desk asks for it: filtered, searched and paged by indexed queries,
so it stays quick with tens of thousands of held messages."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from mailguard.store.backend import Queries
from mailguard.store.db import conditions, like
from mailguard.store.quarantine import STATUSES, Held, Quarantine

PAGE = 50


@dataclass(frozen=True)
class Filters:
    status: str = "held"      # or "all"
    check: str = ""           # a check's name, e.g. "language"
    sender: str = ""          # part of the sender's address
    since: float | None = None
    until: float | None = None
    search: str = ""          # in the id, sender, recipients and (for those who see them) subject
    page: int = 1


def _where(f: Filters, scope: tuple[str, tuple[Any, ...]], search: bool = True
           ) -> tuple[str, list[Any]]:
    clauses, args = [scope[0]], list(scope[1])
    if f.status != "all":
        assert f.status in STATUSES
        clauses.append("q.status = ?")
        args.append(f.status)
    if f.check:
        clauses.append("q.checks LIKE ?")
        args.append(f"%,{f.check},%")
    more, more_args = conditions(contains={"q.sender": f.sender}, since=f.since, until=f.until,
                                 ts="q.ts")
    clauses.extend(more)
    args.extend(more_args)
    if f.search and search:
        fields = ["q.id", "q.sender", "q.recipients"]
        clauses.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in fields) + ")")
        args.extend([like(f.search)] * len(fields))
    return " AND ".join(clauses), args


async def page(quarantine: Quarantine, f: Filters, scope: tuple[str, tuple[Any, ...]],
               subjects: bool) -> tuple[list[Held], int]:
    """One page of matching messages, newest first, and how many match in all. Subjects are
    sealed in the store, so a search that includes them opens each candidate's subject."""
    db, offset = quarantine.db, (max(f.page, 1) - 1) * PAGE
    if f.search and subjects:
        where, args = _where(f, scope, search=False)
        needle = f.search.lower()
        rows = await db.all(f"SELECT q.id, q.sender, q.recipients, q.subject FROM quarantine q "
                            f"WHERE {where} ORDER BY q.ts DESC", args)

        def matching() -> list[str]:   # off the event loop: 10,000 subjects take ~40 ms
            return [qid for qid, sender, rcpts, subject in rows
                    if needle in f"{qid} {sender} {rcpts}".lower()
                    or needle in (quarantine.sealer.open_text(subject, qid) or "").lower()]
        ids = await asyncio.to_thread(matching)
        chosen = ids[offset:offset + PAGE]
        marks = ",".join("?" * len(chosen))
        found = await db.all(f"SELECT * FROM quarantine WHERE id IN ({marks}) ORDER BY ts DESC",
                             chosen)
        return [quarantine.held(r) for r in found], len(ids)
    where, args = _where(f, scope)
    (total,) = await db.one(f"SELECT count(*) FROM quarantine q WHERE {where}", args)
    rows = await db.all(
        f"SELECT * FROM quarantine q WHERE {where} ORDER BY q.ts DESC LIMIT ? OFFSET ?",
        [*args, PAGE, offset])
    return [quarantine.held(r) for r in rows], int(total)


async def counts(db: Queries, status: str, scope: tuple[str, tuple[Any, ...]]
                 ) -> dict[str, int]:
    """Messages per check among those of this status the reviewer may see, most first. Each
    message's checks are one column, and most messages share a handful of combinations: the
    store groups by combination in one pass, and only the distinct ones are split here."""
    where, args = _where(Filters(status=status), scope)
    found: dict[str, int] = {}
    for checks, n in await db.all(
            f"SELECT q.checks, count(*) FROM quarantine q WHERE {where} GROUP BY q.checks", args):
        for name in filter(None, (checks or "").split(",")):
            found[name] = found.get(name, 0) + n
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))
