#!/usr/bin/env python3
"""The review desk with 10,000 held messages: the queue's first and last pages, a filter by
check, a sender filter, a search that opens every sealed subject, the dashboard, and one
message, each timed through the ASGI app (httpx), beside the same queue page over an empty
store in the same run.

Issue 7's target: the queue stays quick with 10,000 held messages (paged, indexed queries).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import httpx  # noqa: E402
from conftest import base_config, message, toml_dump  # noqa: E402
from desk import PASSWORD, csrf_of  # noqa: E402

from mailguard import config  # noqa: E402
from mailguard.model import (  # noqa: E402
    Action,
    Client,
    Envelope,
    Finding,
    Mail,
)
from mailguard.store import db as store_db  # noqa: E402
from mailguard.store import reviewers  # noqa: E402
from mailguard.store.quarantine import Quarantine  # noqa: E402
from mailguard.web.app import create_app  # noqa: E402

RULES = [("identity", "foreign_from"), ("language", "threats:10"), ("confidential", "unencrypted"),
         ("attachments", "macros"), ("personal", "untagged")]


def config_in(folder: Path) -> Path:
    folder.mkdir(parents=True)
    path = folder / "mailguard.toml"
    path.write_text(toml_dump(base_config(folder / "var", "maildir:var/outbox")))
    return path


async def fill(path: Path, count: int) -> Path:
    """A store with `count` held messages, written by Quarantine.hold as the gateway would
    (sealed and fsync'd, one file each)."""
    settings = config.load(path)
    db = await store_db.connect(settings.storage.data_dir)
    await reviewers.add(db, "dpo", "dpo", PASSWORD)
    quarantine = Quarantine(db, settings.storage.data_dir, settings.storage.quarantine_key)
    started = time.time() - count * 60
    for i in range(count):
        check, rule = RULES[i % len(RULES)]
        raw = message(from_=f"staff{i % 300}@example.sch.uk", subject=f"Report {i} for Year {i % 13}")
        mail = Mail(f"{i:016X}", Envelope(f"staff{i % 300}@example.sch.uk", (f"p{i}@gmail.com",)),
                    Client("127.0.0.1"), raw, received_at=started + i * 60)
        finding = Finding(check=check, rule=rule, action=Action.QUARANTINE, clause="bench",
                          message="bench", advice="bench")
        await quarantine.hold(mail, (finding,), "bench")
    await db.close()
    return path


async def timed(path: Path, urls: list[str], rounds: int = 7) -> dict[str, float]:
    app = create_app(config.load(path), None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://desk.test") as c:
        page = await c.get("/login")
        await c.post("/login", data={"csrf": csrf_of(page.text), "name": "dpo",
                                     "password": PASSWORD})
        out = {}
        for url in urls:
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                r = await c.get(url)
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (url, r.status_code)
            out[url] = statistics.median(times)
    await app.state.desk.db.close()
    return out


def measure(count: int = 10_000) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        empty = asyncio.run(fill(config_in(Path(tmp) / "empty"), 0))
        t = time.perf_counter()
        full = asyncio.run(fill(config_in(Path(tmp) / "full"), count))
        fill_s = time.perf_counter() - t
        base = asyncio.run(timed(empty, ["/queue"]))["/queue"]
        urls = ["/queue", f"/queue?page={count // 50}", "/queue?check=language",
                "/queue?sender=staff7@", "/queue?q=Year+12", "/dashboard",
                f"/message/{count - 1:016X}"]
        got = asyncio.run(timed(full, urls))
    return {"count": count, "hold_ms": fill_s * 1000 / max(count, 1), "empty_queue_ms": base,
            "pages": got}


def report(r: dict) -> str:
    lines = [f"review desk with {r['count']:,} held messages (median of 7; the queue over an "
             f"empty store: {r['empty_queue_ms']:.1f} ms; each hold {r['hold_ms']:.2f} ms):"]
    for url, ms in r["pages"].items():
        lines.append(f"  {url:28} {ms:7.1f} ms  ({ms / r['empty_queue_ms']:.1f}x the empty queue)")
    return "\n".join(lines)


if __name__ == "__main__":
    result = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
    print(report(result))
    if "--json" in sys.argv:
        print(json.dumps(result))
