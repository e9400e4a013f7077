#!/usr/bin/env python3
"""What the misdirected check costs a message (in `make bench`), with 10,000 directory rows
and 100,000 sender-recipient pairs of history: the check's own time, on messages whose text,
attachments and address headers the rest of the policy has already read (as the shipped
policy has: the views, the files and the parsed From, To and Cc are shared), and cold,
reading them itself. Beside it, the same messages
through the shipped policy's other checks, measured in the same run.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]
from misdirected_eval import settings_for  # noqa: E402
from schoolgen import cases, school  # noqa: E402

from mailguard.checks import misdirected  # noqa: E402
from mailguard.files import report  # noqa: E402
from mailguard.mime.views import views  # noqa: E402
from mailguard.model import Client, Envelope, Mail  # noqa: E402

PAIRS = 100_000


def build() -> tuple[Any, list[Any], int]:
    s = school(7, pupils=6800, staff=400, history=20_000)
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(s, Path(tmp))
    rows = len(s.parents) + len(s.staff)
    rng = random.Random(7)
    senders = [t.email for t in s.staff]
    while len(settings.history._pairs) < PAIRS:
        settings.history.saw(rng.choice(senders), [f"c{rng.randrange(10**9)}@example.org"])
    return settings, cases(s, 7, count=400), rows


def mails(batch: list[Any]) -> list[Mail]:
    return [Mail(id=f"B{n}", envelope=Envelope(c.sender, tuple(c.recipients)),
                 client=Client("127.0.0.1"), raw=c.raw) for n, c in enumerate(batch)]


async def timed(batch: list[Mail], settings: Any, warm: bool) -> float:
    if warm:   # what the other checks have already read (identity and bcc: the headers)
        for mail in batch:
            views(mail)
            await report.of(mail, settings.limits)
            for field in ("From", "To", "Cc"):
                mail.addresses(field)
    started = time.perf_counter()
    for mail in batch:
        await misdirected.inspect(mail, settings)
    return (time.perf_counter() - started) / len(batch) * 1000


async def policy(batch: list[Mail], folder: Path) -> float:
    """The shipped policy's checks without this one, on the same messages (ms each)."""
    from mailguard import config, pipeline

    shipped = (ROOT / "config" / "mailguard.toml").read_text().replace(
        'folder = "config/disclaimers"', f'folder = "{ROOT}/config/disclaimers"').replace(
        'file = "config/directory.csv"', f'file = "{folder}/directory.csv"').replace(
        'data_dir = "var"', f'data_dir = "{folder}/var"').replace(
        'folder = "wordlists"', f'folder = "{ROOT}/wordlists"')
    (folder / "shipped.toml").write_text(shipped)
    settings = config.load(folder / "shipped.toml")
    settings.checks.pop("misdirected", None)
    settings.checks.pop("limits", None)   # its hourly count is a store, not a reading
    started = time.perf_counter()
    for mail in batch:
        await pipeline.inspect(mail, settings)
    return (time.perf_counter() - started) / len(batch) * 1000


def measure() -> dict[str, Any]:
    settings, batch, rows = build()
    out: dict[str, list[float]] = {"warm": [], "cold": [], "policy": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "directory.csv").write_text("email,role,name,pupils\n")
        for _ in range(3):
            out["policy"].append(asyncio.run(policy(mails(batch), folder)))
            out["cold"].append(asyncio.run(timed(mails(batch), settings, warm=False)))
            out["warm"].append(asyncio.run(timed(mails(batch), settings, warm=True)))
    return {"rows": rows, "pairs": len(settings.history._pairs), "messages": len(batch),
            **{k: statistics.median(v) for k, v in out.items()}}


def report_(r: dict[str, Any]) -> str:
    return (f"misdirected check, {r['rows']:,} directory rows, {r['pairs']:,} history pairs, "
            f"{r['messages']} messages (median of 3): {r['warm']:.3f} ms a message with the "
            f"text and files already read ({r['warm'] / r['policy']:.2f}x the rest of the "
            f"policy's {r['policy']:.2f} ms), {r['cold']:.3f} ms reading them itself")


if __name__ == "__main__":
    print(report_(measure()))
