#!/usr/bin/env python3
"""How fast the language scan reads mail text, beside other ways of matching a wordlist, on the
same megabyte in the same run.

  mailguard    lexicon.scan, everything included: entities, whole words, stems, phrases,
               look-alike letters and NFKC, leetspeak, spaced and stretched letters
  naive re     one `\\b(?:term|term|...)\\b` alternation, case-insensitive (no normalisation)
  trie re      the same terms as one trie-shaped alternation over lower-cased bytes
  hyperscan    Hyperscan in regex mode (PyPI `hyperscan`), `\\bterm\\b` per term, caseless:
               the engine mailguard uses, the way one would first reach for it

The lists are the shipped ones plus generated word-like terms (words, stems and phrases) to
reach TERMS entries. Reloading (with the event loop's longest stall while the new lists
compile in a thread) and memory are measured in fresh processes.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import mailtext  # noqa: E402

from mailguard.text import lexicon, matcher  # noqa: E402

TERMS = 10_000
SIZE = 1_000_000
PLANTED = ("you are a f.u.c.k.i.n.g idiot", "sh1t", "what a twat", "\u0455hit happens",
           "fuuuuuck off", "I will k1ll you")


def wordlists(folder: Path, count: int = TERMS) -> int:
    """The shipped lists plus generated terms in `generated.txt`: returns the entries in all."""
    for path in (ROOT / "wordlists").glob("*.txt"):
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    shipped = len(lexicon.load(folder).terms)
    english = {w.lower()[:n] for w in mailtext.vocabulary() for n in range(2, len(w) + 1)}
    rng = random.Random(3)
    syllables = [a + b for a in "bcdfghjklmnprstvwz" for b in ("a", "e", "i", "o", "u", "ou", "ai")]
    made: set[str] = set()
    while len(made) < count - shipped:
        word = "".join(rng.choices(syllables, k=rng.randint(2, 4))) + rng.choice(("", "x", "q"))
        if word in english:
            continue  # a generated term must not be (the start of) an English word
        roll = rng.random()
        made.add(f"{word}*" if roll < 0.1 else f"{word} {rng.choice(syllables)}" if roll < 0.2
                 else word)
    (folder / "generated.txt").write_text("\n".join(sorted(made)) + "\n", encoding="utf-8")
    return shipped + len(made)


def mail_text(lists: lexicon.Lexicon) -> str:
    """A megabyte of mail-like text, clean but for a few offending lines planted in it (the
    dictionary it is made from has rude words: those are left out)."""
    clean = [w for w in mailtext.vocabulary() if not lists.scan(w)]
    text = mailtext.text(SIZE - sum(len(p) + 2 for p in PLANTED), vocabulary=clean)
    step = len(text) // (len(PLANTED) + 1)
    for i, line in enumerate(PLANTED, 1):
        at = text.find(" ", i * step)
        text = text[:at] + f" {line} " + text[at:]
    return text


def best_of(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def entries(lists: lexicon.Lexicon) -> list[str]:
    """The terms as plain text, for the engines that know nothing of stems and forms."""
    return [t.text.rstrip("*") for t in lists.terms if t.kind != "regex"]


def _fresh(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout)


LOAD = """
import asyncio, json, sys, time
from pathlib import Path
sys.path.insert(0, '.')
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
from mailguard.text import lexicon
async def reload():
    gaps, done = [], False
    async def tick():
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    lists = await asyncio.to_thread(lexicon.load, Path({folder!r}))
    seconds = time.perf_counter() - started
    done = True
    await ticker
    return lists, seconds, max(gaps)
before = rss()
lists, seconds, stall = asyncio.run(reload())
grown = rss() - before
del lists
# As IT edits a list and saves it: one more word, then the reload a running service does.
with open(Path({folder!r}) / "generated.txt", "a") as f:
    f.write("zzkqworde" + chr(10))
again, reload_s, reload_stall = asyncio.run(reload())
print(json.dumps({{"load_s": seconds, "stall_ms": stall * 1000, "rss_mb": rss(),
                  "lists_mb": grown, "reload_s": reload_s, "reload_stall_ms": reload_stall * 1000}}))
"""

NEAR = """
import json, shutil, sys, time
from pathlib import Path
sys.path.insert(0, '.')
import hyperscan
from mailguard.text import lexicon
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
folder, text = Path({folder!r}), Path({text!r}).read_bytes()
shipped = lexicon.load(folder)
words = sorted({{t.text.rstrip('*').encode() for t in shipped.terms if t.near and t.severity != 'low'
                and t.kind in ('word', 'stem') and t.text.isascii()}})
# Hyperscan's own approximate matching: each word within one edit, as " word ".
patterns = [b" " + w + b" " for w in words]
db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
started = time.perf_counter()
db.compile(expressions=patterns, ids=list(range(len(patterns))), elements=len(patterns),
           flags=[hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH] * len(patterns),
           ext=[(hyperscan.HS_EXT_FLAG_EDIT_DISTANCE, 0, 0, 0, 1, 0)] * len(patterns))
compile_s = time.perf_counter() - started
started = time.perf_counter()
db.scan(text, match_event_handler=lambda *a: None)
scan_s = time.perf_counter() - started
# mailguard's near forms for every term of every list (as if each said `# near: yes`).
for path in folder.glob('*.txt'):
    path.write_text('# near: yes' + chr(10) + path.read_text())
before = rss()
started = time.perf_counter()
everything = lexicon.load(folder)
print(json.dumps({{"near_words": len(words), "near_forms_shipped": len(shipped.matcher.near),
                  "edit_distance_compile_s": compile_s, "edit_distance_mb_s": len(text) / 1e6 / scan_s,
                  "near_all_forms": len(everything.matcher.near),
                  "near_all_load_s": time.perf_counter() - started,
                  "near_all_mb": rss() - before}}))
"""

HYPERSCAN = """
import json, re, sys, time
import hyperscan
terms = json.load(open({terms!r}))
started = time.perf_counter()
db = hyperscan.Database()
db.compile(expressions=[rb"\\b" + re.escape(t).encode() + rb"\\b" for t in terms],
           ids=list(range(len(terms))), elements=len(terms),
           flags=[hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH] * len(terms))
compile_s = time.perf_counter() - started
data = open({text!r}, 'rb').read()
hits = []
best = float('inf')
for _ in range(5):
    hits.clear()
    started = time.perf_counter()
    db.scan(data, match_event_handler=lambda i, f, t, fl, c: hits.append(i))
    best = min(best, time.perf_counter() - started)
print(json.dumps({{"compile_s": compile_s, "scan_s": best, "hits": len(hits)}}))
"""


def measure(count: int = TERMS) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "lists"
        folder.mkdir()
        total = wordlists(folder, count)
        lists = lexicon.load(folder)
        text = mail_text(lists)
        mb = len(text.encode()) / 1e6
        found = {h.term.text for h in lists.scan(text)}
        result: dict = {"terms": total, "text_mb": round(mb, 2), "mailguard_found": len(found)}
        result["mailguard_mb_s"] = mb / best_of(lambda: lists.scan(text), 7)
        # The shipped rules (wordlists/rules) beside them: the language check runs both.
        from mailguard.text import rules

        joined = rules.load(ROOT / "wordlists" / "rules")
        result["rules_mb_s"] = mb / best_of(lambda: joined.scan(text), 5)
        # As the gateway reads mail: the rules' anchors folded into the lists' one pass.
        both = lexicon.load(folder, folded=joined.folded())
        result["lists_and_rules_mb_s"] = mb / best_of(
            lambda: joined.scan(text, both.scan_folded(text)[1]), 9)
        plain = entries(lists)
        data = text.lower().encode()
        trie = re.compile(rb"\b(?:" + matcher.trie_pattern(t.encode() for t in plain) + rb")\b")
        result["trie_re_mb_s"] = mb / best_of(lambda: trie.findall(data), 3)
        naive = re.compile(r"\b(?:" + "|".join(map(re.escape, plain)) + r")\b", re.I)
        result["naive_re_mb_s"] = mb / best_of(lambda: naive.findall(text), 1)
        loaded = _fresh(LOAD.format(folder=str(folder)))
        result.update({"load_s": loaded["load_s"], "loop_stall_ms": loaded["stall_ms"],
                       "reload_s": loaded["reload_s"],
                       "reload_stall_ms": loaded["reload_stall_ms"],
                       "lists_rss_mb": loaded["lists_mb"], "process_rss_mb": loaded["rss_mb"]})
        (Path(tmp) / "terms.json").write_text(json.dumps(plain))
        (Path(tmp) / "text.txt").write_bytes(text.encode())
        near_folder = Path(tmp) / "near"
        shutil.copytree(folder, near_folder)
        try:
            result.update(_fresh(NEAR.format(folder=str(near_folder),
                                             text=str(Path(tmp) / "text.txt"))))
        except subprocess.CalledProcessError as e:
            result["near"] = f"not run: {e.stderr.strip().splitlines()[-1]}"
        try:
            hs = _fresh(HYPERSCAN.format(terms=str(Path(tmp) / "terms.json"),
                                         text=str(Path(tmp) / "text.txt")))
            result["hyperscan_mb_s"] = mb / hs["scan_s"]
            result["hyperscan_compile_s"] = hs["compile_s"]
        except subprocess.CalledProcessError as e:
            result["hyperscan"] = f"not run: {e.stderr.strip().splitlines()[-1]}"
    for key in ("trie_re", "naive_re", "hyperscan"):
        if f"{key}_mb_s" in result:
            result[f"mailguard_vs_{key}"] = result["mailguard_mb_s"] / result[f"{key}_mb_s"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


def report(r: dict) -> str:
    lines = [f"language scan, {r['terms']} terms, {r['text_mb']} MB of mail text: mailguard "
             f"{r['mailguard_mb_s']:.1f} MB/s; naive re {r['naive_re_mb_s']:.2f} MB/s "
             f"(mailguard {r['mailguard_vs_naive_re']:.0f}x); trie re {r['trie_re_mb_s']:.1f} "
             f"MB/s ({r['mailguard_vs_trie_re']:.2f}x)",
             f"  with the language rules as well (wordlists/rules, their anchors read in the "
             f"lists' pass): {r['lists_and_rules_mb_s']:.1f} MB/s (the rules alone, "
             f"anchors and all, {r['rules_mb_s']:.1f} MB/s)"]
    if "hyperscan_mb_s" in r:
        lines.append(f"  hyperscan {r['hyperscan_mb_s']:.0f} MB/s "
                     f"({r['mailguard_vs_hyperscan']:.2f}x) after {r['hyperscan_compile_s']:.1f}"
                     " s compiling")
    else:
        lines.append(f"  hyperscan {r.get('hyperscan')}")
    lines.append(f"  lists load and compile in {r['load_s']:.2f} s in a thread (event loop's "
                 f"longest stall meanwhile {r['loop_stall_ms']:.0f} ms), {r['lists_rss_mb']:.0f} "
                 f"MB compiled (process {r['process_rss_mb']:.0f} MB RSS); a reload "
                 f"{r['reload_s']:.2f} s (stall {r['reload_stall_ms']:.0f} ms)")
    if "near_words" in r:
        lines.append(
            f"  near spellings: {r['near_forms_shipped']} literal forms of {r['near_words']} "
            f"shipped words (# near: yes); Hyperscan's edit distance 1 on the same words "
            f"compiles in {r['edit_distance_compile_s']:.2f} s and scans "
            f"{r['edit_distance_mb_s']:.1f} MB/s; near forms for all {r['terms']} terms: "
            f"{r['near_all_forms']} forms, load {r['near_all_load_s']:.2f} s, "
            f"{r['near_all_mb']:.0f} MB")
    return "\n".join(lines)


if __name__ == "__main__":
    results = measure(int(sys.argv[1]) if len(sys.argv) > 1 else TERMS)
    print(report(results))
    print(json.dumps(results, indent=2))
