#!/usr/bin/env python3
"""The store on SQLite and on PostgreSQL, side by side in one run (issue 18):

  hold       Quarantine.hold as the gateway makes it before its 250 (sealed content and
             record, fsync'd or committed with synchronous_commit): median and p99
  desk       the review desk with 100,000 held messages: the queue's first page, a sender
             filter, a check filter, a page deep in, one message; through the ASGI app

PostgreSQL is a real server started here (tests/pgserver.py) on loopback, on this machine's
own disk: the figures are what one gateway sees of a store next to it. Targets: the first
page under 50 ms, a sender filter under 100 ms.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import base_config, deep_update, message, toml_dump  # noqa: E402
from desk import PASSWORD  # noqa: E402
from desk_speed import timed  # noqa: E402

from mailguard import config  # noqa: E402
from mailguard.model import Action, Client, Envelope, Finding, Mail  # noqa: E402
from mailguard.store import reviewers  # noqa: E402
from mailguard.store.opening import open_store  # noqa: E402
from mailguard.store.quarantine import Quarantine, _finding_dict, checks_column  # noqa: E402

RULES = [("identity", "foreign_from"), ("language", "threats:10"), ("confidential", "unencrypted"),
         ("attachments", "macros"), ("personal", "untagged")]
HOLDS = 500        # real holds timed, per engine
ROWS = 100_000     # held messages behind the desk


def config_in(folder: Path, storage: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    path = folder / "mailguard.toml"
    path.write_text(toml_dump(deep_update(base_config(folder / "var", "maildir:var/outbox"),
                                          {"storage": storage})))
    return path


def finding(i: int) -> Finding:
    check, rule = RULES[i % len(RULES)]
    return Finding(check=check, rule=rule, action=Action.QUARANTINE, clause="bench",
                   message="bench", advice="bench")


def mail(i: int, at: float) -> Mail:
    sender = f"staff{i % 300}@example.sch.uk"
    return Mail(f"{i:016X}", Envelope(sender, (f"p{i}@gmail.com",)), Client("127.0.0.1"),
                message(from_=sender, subject=f"Report {i} for Year {i % 13}"), received_at=at)


async def holds(path: Path) -> list[float]:
    """HOLDS holds as the gateway makes them, each timed (ms)."""
    settings = config.load(path)
    store = await open_store(settings.storage)
    q = Quarantine(store, settings.storage.data_dir, settings.storage.quarantine_key)
    out = []
    try:
        for i in range(HOLDS):
            m = mail(10_000_000 + i, time.time())
            t = time.perf_counter()
            await q.hold(m, (finding(i),), "bench")
            out.append((time.perf_counter() - t) * 1000)
    finally:
        await store.close()
    return out


async def fill(path: Path, count: int) -> None:
    """`count` held messages written in bulk, as holds would leave them (the subject sealed;
    one message's content kept, for the message page), and the DPO's account."""
    settings = config.load(path)
    store = await open_store(settings.storage)
    q = Quarantine(store, settings.storage.data_dir, settings.storage.quarantine_key)
    try:
        await reviewers.add(store, "dpo", "dpo", PASSWORD)
        started = time.time() - count * 60
        for first in range(0, count, 5000):
            rows, rules = [], []
            for i in range(first, min(count, first + 5000)):
                m, f = mail(i, started + i * 60), finding(i)
                rcpts = json.dumps(list(m.envelope.recipients))
                rows.append((m.id, m.received_at, "held", "bench", m.envelope.sender, rcpts, rcpts,
                             "127.0.0.1", None, len(m.raw), json.dumps([_finding_dict(f)]),
                             f"{m.id}.eml", m.received_at,
                             q.sealer.seal_text(m.subject, m.id), 0, "[]", "bench",
                             checks_column((f,))))
                rules.append((m.id, f.check, f.rule_id))
            async with store.transaction() as tx:
                await tx.run_many(
                    "INSERT INTO quarantine (id, ts, status, reason, sender, recipients, "
                    "held_recipients, client, auth_user, size, findings, file, updated, subject,"
                    " safeguarding, plan, node, checks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                    " ?, ?, ?, ?, ?, ?, ?)", rows)
                await tx.run_many("INSERT INTO held_rules (qid, check_name, rule) VALUES "
                                  "(?, ?, ?)", rules)
        last = mail(count - 1, started + (count - 1) * 60)
        await q.files.write(f"{last.id}.eml", q.sealer.seal(last.raw, last.id))
        if store.dialect == "postgresql":   # as autovacuum leaves a server that has been up
            import psycopg

            async with await psycopg.AsyncConnection.connect(
                    settings.storage.url, password=settings.storage.password,
                    autocommit=True) as conn:
                await conn.execute("VACUUM ANALYZE")
    finally:
        await store.close()


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1]


def measure(count: int = ROWS) -> dict[str, Any]:
    from pgserver import PostgresServer

    server = PostgresServer()
    out: dict[str, Any] = {"rows": count}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            secret = Path(tmp) / "pg.password"
            secret.write_text(server.password + "\n")
            secret.chmod(0o600)
            engines = {"sqlite": {},
                       "postgresql": {"url": server.fresh_database(),
                                      "password_file": str(secret)}}
            urls = ["/queue", "/queue?sender=staff7@", "/queue?check=language",
                    f"/queue?page={count // 50}", f"/message/{count - 1:016X}"]
            for name, storage in engines.items():
                path = config_in(Path(tmp) / name, storage)
                held = asyncio.run(holds(path))
                t = time.perf_counter()
                asyncio.run(fill(path, count))
                out[name] = {"hold_median_ms": statistics.median(held),
                             "hold_p99_ms": p99(held), "fill_s": time.perf_counter() - t,
                             "pages_ms": asyncio.run(timed(path, urls))}
    finally:
        server.close()
    return out


def report(r: dict[str, Any]) -> str:
    lines = [f"the store, SQLite beside PostgreSQL (loopback), {r['rows']:,} held messages "
             "behind the desk (median of 7):"]
    for name in ("sqlite", "postgresql"):
        e = r[name]
        lines.append(f"  {name}: hold median {e['hold_median_ms']:.2f} ms, p99 "
                     f"{e['hold_p99_ms']:.2f} ms; " + "; ".join(
                         f"{url} {ms:.1f} ms" for url, ms in e["pages_ms"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    result = measure(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else ROWS)
    print(report(result))
    if "--json" in sys.argv:
        print(json.dumps(result))
