#!/usr/bin/env python3
"""What the shipped policy costs per message through the pipeline's own assess() and the
outgoing rewrites, every check together and each alone, beside no checks, in the same run.

Three messages: the 10 KB multipart/alternative to five parents that bench/rewrites.py
times, and smtp-source's own 10 KB and 100 KB messages (numbered lines of X, the text the
SMTP headline row relays). The hourly recipient limit is raised out of reach (it still
counts, in a file of its own), as in the SMTP bench.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from rewrites import sample  # noqa: E402

from mailguard import config, pipeline  # noqa: E402
from mailguard.model import Client, Envelope, Mail  # noqa: E402
from mailguard.store.rates import Rates  # noqa: E402


def smtp_source_message(size: int) -> bytes:
    """The message `smtp-source -l SIZE` sends: four header lines, then numbered lines of X."""
    head = (b"From: <bench@example.sch.uk>\r\nTo: <rcpt@gmail.com>\r\n"
            b"Date: Tue,  1 Dec 2026 10:46:42 +0000 (UTC)\r\nMessage-Id: <1.0001.0000@bench>\r\n\r\n")
    lines, n = [], 0
    while sum(map(len, lines)) < size:
        n += 1
        lines.append(str(n % 10).encode() + b"X" * 78 + b"\r\n")
    return head + b"".join(lines)


def shipped() -> config.Settings:
    full = config.load(ROOT / "config" / "mailguard.toml")
    rates = Rates(Path(tempfile.mkdtemp()) / "rates.db")
    limits = dataclasses.replace(full.checks["limits"], hourly=10**9, rates=rates)
    return dataclasses.replace(full, checks={**full.checks, "limits": limits})


def per_message_ms(settings: config.Settings, raw: bytes, sender: str,
                   recipients: tuple[str, ...], count: int) -> float:
    async def run() -> float:
        started = time.perf_counter()
        for i in range(count):
            mail = Mail(str(i), Envelope(sender, recipients), Client("127.0.0.1"), raw)
            verdict = await pipeline.assess(mail, settings)
            await pipeline.outgoing(mail, settings, b"k" * 32, verdict.plan)
        return (time.perf_counter() - started) * 1000 / count

    return min(asyncio.run(run()) for _ in range(3))


def measure(count: int = 1000) -> dict:
    full = shipped()
    parents = tuple(f"parent{i}@gmail.com" for i in range(5))
    cases = {"10 KB multipart to 5 parents": (sample(10240), "teacher@example.sch.uk", parents),
             "100 KB multipart to 5 parents": (sample(102400), "teacher@example.sch.uk",
                                               parents),
             "smtp-source 10 KB": (smtp_source_message(10240), "bench@example.sch.uk",
                                   ("rcpt@gmail.com",)),
             "smtp-source 100 KB": (smtp_source_message(102400), "bench@example.sch.uk",
                                    ("rcpt@gmail.com",))}
    out = {}
    for label, (raw, sender, rcpts) in cases.items():
        n = count if len(raw) < 50_000 else count // 4
        row = {"kb": len(raw) / 1024,
               "none_ms": per_message_ms(dataclasses.replace(full, checks={}), raw, sender,
                                         rcpts, n),
               "all_ms": per_message_ms(full, raw, sender, rcpts, n)}
        row["alone_ms"] = {name: per_message_ms(dataclasses.replace(full, checks={name: s}),
                                                raw, sender, rcpts, n) - row["none_ms"]
                           for name, s in full.checks.items()}
        out[label] = row
    return out


def report(r: dict) -> str:
    lines = ["the shipped policy per message (assess + rewrites), all checks and each alone:"]
    for label, row in r.items():
        alone = ", ".join(f"{k} {v:.2f}" for k, v in sorted(row["alone_ms"].items(),
                                                             key=lambda kv: -kv[1]))
        lines.append(f"  {label} ({row['kb']:.1f} KB): all {row['all_ms'] - row['none_ms']:.2f} "
                     f"ms over {row['none_ms']:.2f} ms without checks; alone: {alone}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(measure()))
