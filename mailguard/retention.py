"""Retention (excalibur §14, UK GDPR storage limitation): old events go, held mail expires."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from mailguard.config import Settings
from mailguard.store.events import EventLog
from mailguard.store.history import prune as prune_history
from mailguard.store.quarantine import Quarantine

log = structlog.get_logger("mailguard.retention")


async def apply(settings: Settings, events: EventLog, quarantine: Quarantine) -> tuple[int, int]:
    """Delete events and expire held mail past their retention; returns (events, messages).
    Recipient history goes with the events: a pair not seen within their retention is
    forgotten."""
    now = time.time()
    before = now - settings.storage.event_retention_days * 86400
    gone = await events.purge(before)
    history = getattr(settings.checks.get("misdirected"), "history", None)
    forgotten = await (history.prune(before) if history is not None and history.db is not None
                       else prune_history(events.db, before))
    if forgotten:
        log.info("history_pruned", pairs=forgotten)
    expired = await quarantine.expire(now - settings.storage.quarantine_retention_days * 86400)
    return gone, expired


async def run_hourly(current: Callable[[], Settings], events: EventLog,
                     quarantine: Quarantine) -> None:
    """Applies retention once an hour while the gateway runs, so nobody has to remember cron."""
    while True:
        try:
            gone, expired = await apply(current(), events, quarantine)
            if gone or expired:
                log.info("retention_applied", events_deleted=gone, quarantine_expired=expired)
        except Exception as e:  # a failed purge must never stop the gateway
            log.error("retention_failed", error=repr(e))
        await asyncio.sleep(3600)
