"""Telling people about held mail: the DPO of every hold, the safeguarding lead of theirs,
and (optionally) the sender. A hold adds rows to a queue in the store; a loop in each
gateway process claims and sends them, one notice each while they are few and one digest
per reviewer when they are many. A notice the upstream will not take now is tried again.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

import structlog

from mailguard.config import Settings
from mailguard.model import Finding
from mailguard.notices import notify
from mailguard.store.backend import Queries, Store
from mailguard.store.quarantine import Quarantine, is_safeguarding

log = structlog.get_logger("mailguard.notices")
HOUR = 3600
GIVE_UP = 24 * HOUR


async def enqueue(db: Queries, settings: Settings, qid: str, sender: str,
                  findings: tuple[Finding, ...]) -> None:
    """Queue the notices one hold calls for (in the same store as the hold itself)."""
    org, wanted = settings.organisation, settings.notices
    rows = []
    if wanted.held and org.dpo:
        rows.append((org.dpo, "reviewer"))
    if wanted.held and org.safeguarding_lead and any(map(is_safeguarding, findings)) \
            and org.safeguarding_lead != org.dpo:
        rows.append((org.safeguarding_lead, "reviewer"))
    if wanted.sender_held and sender:
        rows.append((sender, "sender"))
    if rows:
        now = time.time()
        await db.run_many("INSERT INTO notices (ts, qid, recipient, kind) VALUES (?, ?, ?, ?)",
                          [(now, qid, r, kind) for r, kind in rows])


async def _claim(db: Store, seqs: list[int], now: float, digest: bool) -> list[int]:
    """Take these rows for this process; another worker (or node) may have taken some first."""
    marks = ",".join("?" * len(seqs))
    async with db.transaction() as tx:
        return [r[0] for r in await tx.all(
            f"UPDATE notices SET claimed = ?, digest = ? WHERE claimed IS NULL "
            f"AND seq IN ({marks}) RETURNING seq", (now, int(digest), *seqs))]


async def _release(db: Queries, seqs: list[int], now: float) -> None:
    """Not sent: back in the queue to try again, unless they have waited a day."""
    marks = ",".join("?" * len(seqs))
    await db.run(f"UPDATE notices SET claimed = NULL, tries = tries + 1 WHERE seq IN "
                 f"({marks}) AND ts > ?", (*seqs, now - GIVE_UP))


async def flush(settings: Settings, quarantine: Quarantine, now: float | None = None) -> int:
    """Send what is due; returns how many notices went."""
    now = time.time() if now is None else now
    db = quarantine.db
    pending = await db.all("SELECT seq, qid, recipient, kind FROM notices "
                           "WHERE claimed IS NULL ORDER BY seq")
    by_recipient: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for seq, qid, recipient, kind in pending:
        by_recipient[(recipient, kind)].append((seq, qid))
    sent = 0
    for (recipient, kind), items in by_recipient.items():
        recent, last_digest = await db.one(
            "SELECT count(*), max(CASE WHEN digest <> 0 THEN claimed END) FROM notices "
            "WHERE recipient = ? AND kind = ? AND claimed > ?", (recipient, kind, now - HOUR))
        batch = kind == "reviewer" and len(items) + recent > settings.notices.digest_after
        if batch and last_digest and now - last_digest < settings.notices.digest_minutes * 60:
            continue   # a digest went lately: the next one gathers these too
        seqs = set(await _claim(db, [s for s, _ in items], now, batch))
        due = [(seq, h) for seq, qid in items if seq in seqs
               and (h := await quarantine.get(qid)) is not None
               and (h.status == "held" or kind == "sender")]
        if not due:
            continue
        if batch:
            outgoing = [([s for s, _ in due],
                         notify.held_digest(settings, recipient, [h for _, h in due]))]
        elif kind == "reviewer":
            outgoing = [([seq], notify.held_notice(settings, recipient, h)) for seq, h in due]
        else:
            outgoing = [([seq], notify.sender_held_notice(settings, h)) for seq, h in due]
        for covered, message in outgoing:
            if await _send(settings, recipient, message):
                sent += 1
            else:
                await _release(db, covered, now)
        log.info("notices", kind=kind, digest=batch, messages=len(due))
    return sent


async def _send(settings: Settings, recipient: str, message: bytes) -> bool:
    try:
        reply = await notify.send(settings, recipient, message)
    except Exception as e:   # the held mail is safe; only the notice waits
        log.error("notice_failed", recipient_domain=recipient.rpartition("@")[2], error=repr(e))
        return False
    if not reply.ok:
        log.warning("notice_refused", recipient_domain=recipient.rpartition("@")[2],
                    reply=str(reply)[:200])
    return reply.ok


async def run(current: Callable[[], Settings], quarantine: Quarantine) -> None:
    """Flush the queue every [notices] interval seconds while the gateway runs."""
    while True:
        await asyncio.sleep(current().notices.interval)
        try:
            await flush(current(), quarantine)
        except Exception as e:   # notices must never stop the gateway
            log.error("notices_flush_failed", error=repr(e))
