#!/usr/bin/env python3
"""How well the wordlists find hate speech, beside two PyPI filters, on the same sentences.

Data: de Gibert et al. (2018) Stormfront sentences labelled hate / noHate, read from
../shared/corpus/abuse/ (kept outside the repository). A sentence counts as flagged by
mailguard when the shipped lists match at medium or high severity in a hate category
(discriminatory, threats, harassment, extremism): swearing alone is not hate speech.
The comparison packages (better-profanity, alt-profanity-check) are installed only for this
evaluation: `make eval`.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HATE = {"discriminatory", "threats", "harassment", "extremism"}
DATA = ROOT.parent / "shared/corpus/abuse/degibert2018-stormfront/sentences_labelled.csv"


def scores(predicted: list[bool], truth: list[bool]) -> dict[str, float]:
    tp = sum(p and t for p, t in zip(predicted, truth, strict=True))
    fp = sum(p and not t for p, t in zip(predicted, truth, strict=True))
    fn = sum(t and not p for p, t in zip(predicted, truth, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
            "flagged": tp + fp}


def mailguard_filter() -> Callable[[list[str]], list[bool]]:
    sys.path.insert(0, str(ROOT))
    from mailguard import lexicon

    lists = lexicon.load(ROOT / "wordlists")

    def run(texts: list[str]) -> list[bool]:
        return [any(h.term.severity != "low" and h.term.category in HATE for h in lists.scan(t))
                for t in texts]
    return run


def better_profanity_filter() -> Callable[[list[str]], list[bool]]:
    from better_profanity import profanity

    profanity.load_censor_words()
    return lambda texts: [profanity.contains_profanity(t) for t in texts]


def profanity_check_filter() -> Callable[[list[str]], list[bool]]:
    from profanity_check import predict

    return lambda texts: [bool(p) for p in predict(texts)]


def main() -> int:
    if not DATA.exists():
        print(f"eval: {DATA} is not here (it lives in ../shared/corpus)", file=sys.stderr)
        return 2
    with DATA.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] in ("hate", "noHate")]
    texts = [r["text"] for r in rows]
    truth = [r["label"] == "hate" for r in rows]
    print(f"{len(rows)} sentences, {sum(truth)} labelled hate")
    results = {}
    only = set(sys.argv[2:])
    for name, make in (("mailguard wordlists", mailguard_filter),
                       ("better-profanity", better_profanity_filter),
                       ("alt-profanity-check", profanity_check_filter)):
        if only and name not in only:
            continue
        try:
            run = make()
        except ImportError as e:
            print(f"{name}: not installed ({e.name}); `make eval` installs it")
            continue
        started = time.perf_counter()
        results[name] = {**scores(run(texts), truth),
                         "seconds": round(time.perf_counter() - started, 2)}
        print(f"{name:22} {results[name]}")
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
