#!/usr/bin/env python3
"""How well the misdirected check finds mail going to the wrong person (`make eval`).

The synthetic school of tests/schoolgen.py: 300 pupils in families (siblings, split
families, two pupils of one name), about 450 parents, 40 staff and a sent-mail history of
20,000 messages; then 1,000 test messages, 10% misdirected (wrong parent by name, by UPN, by
attachment, a forwarded note, a mail merge gone wrong, a slipped address, a domain typo, a
display name at another address, personal data to a first-time or lone outsider) and 90%
correct, with the hard cases (both parents, siblings, a quoted reply, a reply quoting the
parent about another child, another child named beside one's own, a newsletter naming six
pupils, a new parent in September, a partner known from history).

Seed 11 is the school the rules were tuned on; seed 47 is held back and only run for the
figures (seed 29, held back before it, was looked at to find two defects, so it no longer
counts as unseen). Beside the check: what the simple rules the commercial tools start from would flag
on the same cases (Outlook's external-recipient MailTip: any outside recipient; a
first-time-recipient warning: any recipient the sender has not written to before). There is
no free package for this to compare with.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]
from schoolgen import DOMAIN, cases, school  # noqa: E402

from mailguard import config  # noqa: E402
from mailguard.checks import misdirected  # noqa: E402
from mailguard.model import Client, Envelope, Mail  # noqa: E402
from mailguard.store.history import History  # noqa: E402

SEEDS = {"tuned on (seed 11)": 11, "held back (seed 47)": 47}
SIGNALS = ("pupil", "lookalike", "unusual")


def settings_for(s: Any, folder: Path) -> Any:
    (folder / "directory.csv").write_text(s.directory_csv())
    (folder / "m.toml").write_text(
        '[server]\nhostname = "t"\n[upstream]\nurl = "maildir:out"\n[organisation]\n'
        f'name = "T"\ndomains = ["{DOMAIN}"]\n[storage]\ndata_dir = "var"\n'
        '[directory]\nfile = "directory.csv"\n[checks.misdirected]\npupil = "quarantine"\n')
    built = config.load(folder / "m.toml").checks["misdirected"]
    history = History(b"k" * 32)
    for ts, sender, rcpts in s.history:
        history.saw(sender, rcpts, ts)
    return type(built)(**{**vars(built), "history": history})


def evaluate(seed: int) -> dict[str, Any]:
    s = school(seed)
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(s, Path(tmp))
    history = settings.history
    tally = {k: Counter() for k in (*SIGNALS, "any", "mailtip", "first-time")}
    held_correct = correct = 0
    kinds: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for n, case in enumerate(cases(s, seed)):
        mail = Mail(id=f"C{n}", envelope=Envelope(case.sender, tuple(case.recipients)),
                    client=Client("127.0.0.1"), raw=case.raw)
        found = asyncio.run(misdirected.inspect(mail, settings))
        rules = {f.rule for f in found}
        wrong = bool(case.signals)
        correct += not wrong
        held_correct += (not wrong) and any(f.action.value == "quarantine" for f in found)
        for signal in SIGNALS:
            _count(tally[signal], signal in case.signals, signal in rules)
        _count(tally["any"], wrong, bool(rules))
        if wrong:
            kinds[case.kind] += 1
            if not rules & case.signals:
                missed[case.kind] += 1
        outside = [r for r in case.recipients if not r.endswith("@" + DOMAIN)]
        _count(tally["mailtip"], wrong, bool(outside))
        _count(tally["first-time"], wrong,
               any(not history.known(case.sender, r) for r in case.recipients))
    return {"tally": tally, "held_correct": held_correct, "correct": correct,
            "kinds": kinds, "missed": missed, "pupils": len(s.pupils),
            "parents": len(s.parents), "staff": len(s.staff), "history": len(s.history)}


def _count(c: Counter, truth: bool, said: bool) -> None:
    c["tp" if truth and said else "fn" if truth else "fp" if said else "tn"] += 1


def _pr(c: Counter) -> str:
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else float("nan")
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else float("nan")
    return f"precision {p:.3f}, recall {r:.3f} ({c['tp']} found, {c['fp']} false, " \
           f"{c['fn']} missed)"


def report(results: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, r in results.items():
        lines.append(f"misdirected mail, {name}: {r['pupils']} pupils, {r['parents']} parents, "
                     f"{r['staff']} staff, {r['history']} messages of history; 1,000 cases")
        for signal in SIGNALS:
            lines.append(f"  {signal:12} {_pr(r['tally'][signal])}")
        lines.append(f"  {'any signal':12} {_pr(r['tally']['any'])}")
        lines.append(f"  correct mail held: {r['held_correct']} of {r['correct']} "
                     f"({100 * r['held_correct'] / r['correct']:.2f}%)")
        lines.append("  beside it, on the same cases (any misdirection):")
        lines.append(f"    external-recipient warning  {_pr(r['tally']['mailtip'])}")
        lines.append(f"    first-time-recipient warning {_pr(r['tally']['first-time'])}")
        missed = ", ".join(f"{k} {r['missed'][k]}/{n}" for k, n in sorted(r["kinds"].items())
                           if r["missed"][k])
        lines.append(f"  missed by kind: {missed or 'none'}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report({name: evaluate(seed) for name, seed in SEEDS.items()}))
