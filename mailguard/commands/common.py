"""Helpers the command modules share: table output, times, the stores opened for one command."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mailguard.config import Settings


def parse_age(text: str) -> float:
    """'90m', '12h', '1d', '2w' → seconds."""
    m = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number and s, m, h, d or w, e.g. 1d")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


async def with_stores(settings: Settings, work: Callable[..., Awaitable[int]]) -> int:
    from mailguard.store.events import EventLog
    from mailguard.store.opening import open_store
    from mailguard.store.quarantine import Quarantine

    db = await open_store(settings.storage)
    try:
        return await work(db, Quarantine(db, settings.storage.data_dir,
                                          settings.storage.quarantine_key,
                                          settings.storage.quarantine_old_keys,
                                          node=settings.server.node),
                          EventLog(db, node=settings.server.node))
    finally:
        await db.close()
