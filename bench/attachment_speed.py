#!/usr/bin/env python3
"""How long attachment inspection takes per MB for each file type, and how much memory a
25 MB attachment costs, made with the same tools as the tests (tests/filemaker.py).

Each type is timed beside base64-decoding the same bytes (what any gateway must do to read
an attachment at all), in the same run. Memory is measured in fresh processes: the peak of
what the shipped checks allocate (tracemalloc) while judging the message, which is
already in memory.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import filemaker as fm  # noqa: E402

from mailguard.files.limits import Budget, Limits  # noqa: E402
from mailguard.files.report import inspect_file  # noqa: E402

BIG = 25 * 1024**2


def pupils(count: int) -> list[tuple[str, ...]]:
    rng = random.Random(7)
    return [(fm.PUPILS[i % len(fm.PUPILS)][0], f"Surname{i}", f"Forename{rng.randrange(999)}",
             "2014-03-12", "7", f"7R{i % 9}", "N", "N") for i in range(count)]


def files(tmp: Path) -> dict[str, bytes]:
    csv_rows = pupils(60_000)
    prose = "\n".join(f"Paragraph {i}: the class read chapter {i} and wrote a summary of it."
                      for i in range(20_000))
    docx = fm.docx_file(prose)
    with_csv = {"year.csv": fm.csv_export(csv_rows)}
    out = {
        "csv": fm.csv_export(csv_rows),
        "xlsx": fm.xlsx(pupils(20_000)),
        "docx": docx,
        "docx encrypted": fm.office_encrypted(docx),
        "pdf (text)": fm.pdf("\n".join(f"Page {i} of the report, pupil progress" for i in range(300)),
                             tmp),
        "pdf (scan)": fm.pdf("Scanned letter", tmp, image=os.urandom(5 * 1024**2)),
        "zip of csv": fm.zip_files(with_csv, tmp),
        "zip encrypted": fm.zip_files(with_csv, tmp, password=fm.PASSWORD),
    }
    import py7zr
    with py7zr.SevenZipFile(tmp / "b.7z", "w") as z:
        z.writestr(with_csv["year.csv"], "year.csv")
    out["7z of csv"] = (tmp / "b.7z").read_bytes()
    return out


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def speeds() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, data in files(Path(tmp)).items():
            encoded = base64.encodebytes(data)
            decode = best(lambda e=encoded: base64.decodebytes(e))
            inspect = best(lambda d=data, k=kind: inspect_file(f"f.{k.split()[0]}", "", d,
                                                               Budget(Limits()), 0))
            mb = len(data) / 1024**2
            rows.append({"type": kind, "mb": round(mb, 2), "ms_per_mb": inspect * 1000 / mb,
                         "x_decode": inspect / decode})
    return rows


PEAK = """
import asyncio, json, sys, time, tracemalloc
sys.path.insert(0, {root!r})
from mailguard import config, pipeline
from mailguard.model import Client, Envelope, Mail
settings = config.load({config!r})
raw = open({path!r}, "rb").read()
def check():
    mail = Mail("B", Envelope("t@example.sch.uk", ("x@y.org",)), Client("127.0.0.1"), raw)
    verdict = asyncio.run(pipeline.assess(mail, settings))
    return mail, verdict
started = time.perf_counter()
mail, verdict = check()
seconds = time.perf_counter() - started
del mail
tracemalloc.start()
check()
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({{"added_mb": peak / 1024**2, "seconds": seconds,
                  "rules": sorted(set(verdict.rule_ids))}}))
"""


def peaks() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        made = {
            "report.pdf": fm.pdf("Scanned letter", folder, image=os.urandom(BIG - 2000)),
            "year.csv": fm.csv_export(pupils(BIG // 50))[:BIG],
            "photos.zip": fm.zip_files({f"p{i}.jpg": os.urandom(BIG // 5) for i in range(5)},
                                       folder),
        }
        for name, data in made.items():
            path = folder / (name + ".eml")
            path.write_bytes(fm.mail_with({name: data}))
            code = PEAK.format(root=str(ROOT), path=str(path),
                               config=str(ROOT / "config" / "mailguard.toml"))
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True, timeout=600)
            result = json.loads(out.stdout)
            rows.append({"file": name, "mb": len(data) / 1024**2, **result,
                         "x_size": result["added_mb"] / (len(data) / 1024**2)})
    return rows


def check_cost(count: int = 300) -> dict:
    """What reading attachments adds per message (the attachment and confidential checks,
    and the language check's reading of attached text), through the pipeline's own
    assess(), for a 10 KB message to a parent without and with a 30 KB Word file."""
    import asyncio
    import dataclasses

    from mailguard import config, pipeline
    from mailguard.model import Client, Envelope, Mail

    full = config.load(ROOT / "config" / "mailguard.toml")
    # The hourly limit would soon defer the bench's one sender and skip every check after it.
    full = dataclasses.replace(full, checks={**full.checks, "limits": dataclasses.replace(
        full.checks["limits"], hourly=0, rates=None)})
    names = ("attachments", "confidential")
    checks = {k: v for k, v in full.checks.items() if k not in names}
    checks["language"] = dataclasses.replace(checks["language"], attachments=False)
    bare = dataclasses.replace(full, checks=checks)
    words = " ".join(["The class read the next chapter and wrote a summary."] * 190)
    messages = {"10 KB, no attachment": fm.mail_with({}, body=words, to="parent@gmail.com"),
                "10 KB + 30 KB docx": fm.mail_with({"homework.docx": fm.docx_file(words * 3)},
                                                   body=words, to="parent@gmail.com")}

    async def run(raw: bytes, settings: config.Settings) -> float:
        started = time.perf_counter()
        for i in range(count):
            mail = Mail(str(i), Envelope("t@example.sch.uk", ("parent@gmail.com",)),
                        Client("127.0.0.1"), raw)
            await pipeline.assess(mail, settings)
        return (time.perf_counter() - started) * 1000 / count

    out = {}
    for label, raw in messages.items():
        without = min(asyncio.run(run(raw, bare)) for _ in range(3))
        with_them = min(asyncio.run(run(raw, full)) for _ in range(3))
        out[label] = {"without_ms": without, "with_ms": with_them}
    return out


def measure() -> dict:
    return {"speeds": speeds(), "peaks": peaks(), "check_cost": check_cost()}


def report(r: dict) -> str:
    lines = ["attachment inspection (type, size, ms per MB, times a base64 decode of it):"]
    for s in r["speeds"]:
        lines.append(f"  {s['type']:15} {s['mb']:6.2f} MB  {s['ms_per_mb']:8.1f} ms/MB  "
                     f"{s['x_decode']:7.1f}x decode")
    lines.append("peak memory for one 25 MB attachment through every shipped check (above "
                 "the message in memory):")
    for p in r["peaks"]:
        lines.append(f"  {p['file']:12} {p['added_mb']:6.1f} MB = {p['x_size']:.2f}x its size, "
                     f"{p['seconds']:.2f} s; {', '.join(p['rules']) or 'no findings'}")
    lines.append("added per message by reading attachments (attachments, confidential, "
                 "language on attached text; shipped config):")
    for label, c in r["check_cost"].items():
        lines.append(f"  {label:22} +{c['with_ms'] - c['without_ms']:.3f} ms "
                     f"({c['without_ms']:.3f} ms for the other checks)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(measure()))
