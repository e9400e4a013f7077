#!/usr/bin/env python3
"""What the people rules (personal, disclosure, credentials, limits) add per message, through
the pipeline's own assess(), beside the same config without them, in the same run.

Issue 6's target: under 0.2 ms per 10 KB message for these checks together.
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
sys.path.insert(0, str(ROOT / "tests"))
import filemaker as fm  # noqa: E402

from mailguard import config, pipeline  # noqa: E402
from mailguard.model import Client, Envelope, Mail  # noqa: E402
from mailguard.store.rates import Rates  # noqa: E402

PEOPLE = ("personal", "disclosure", "credentials", "limits")


def measure(count: int = 2000) -> dict:
    full = config.load(ROOT / "config" / "mailguard.toml")
    # The hourly count is kept, in a file of its own, with a limit the bench never reaches.
    rates = Rates(Path(tempfile.mkdtemp()) / "rates.db")
    limits = dataclasses.replace(full.checks["limits"], hourly=10**9, rates=rates)
    full = dataclasses.replace(full, checks={**full.checks, "limits": limits})
    bare = dataclasses.replace(full, checks={k: v for k, v in full.checks.items()
                                             if k not in PEOPLE})
    words = " ".join(["The class read the next chapter and wrote a summary of it."] * 175)
    cases = {"to a colleague": ("head@example.sch.uk", words),
             "to a parent's gmail": ("parent@gmail.com", words),
             "to a friend's gmail, personal": ("sam@gmail.com",
                                               "Dinner tonight? love you xx " * 370)}
    out = {}
    for label, (to, body) in cases.items():
        raw = fm.mail_with({}, to=to, body=body)

        async def run(settings: config.Settings, raw: bytes = raw, to: str = to) -> float:
            started = time.perf_counter()
            for i in range(count):
                mail = Mail(str(i), Envelope("t@example.sch.uk", (to,)), Client("127.0.0.1"), raw)
                await pipeline.assess(mail, settings)
            return (time.perf_counter() - started) * 1000 / count

        without = min(asyncio.run(run(bare)) for _ in range(3))
        with_them = min(asyncio.run(run(full)) for _ in range(3))
        out[label] = {"kb": len(raw) / 1024, "without_ms": without, "added_ms": with_them - without}
    return out


def report(r: dict) -> str:
    lines = ["people rules (personal, disclosure, credentials, limits) added per message:"]
    for label, c in r.items():
        lines.append(f"  {label:30} {c['kb']:.1f} KB  +{c['added_ms']:.3f} ms "
                     f"(other checks {c['without_ms']:.3f} ms)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(measure()))
