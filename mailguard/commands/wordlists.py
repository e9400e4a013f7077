"""`mailguard wordlists …`: the tools that let IT tune the language lists with confidence."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from mailguard.commands.common import table, with_stores
from mailguard.config import Settings


def cmd_wordlists(args: argparse.Namespace, settings: Settings) -> int:
    return {"test": cmd_wordlists_test, "lint": cmd_wordlists_lint, "stats": cmd_wordlists_stats,
            "replay": cmd_wordlists_replay}[args.wordlists_command](args, settings)


def cmd_wordlists_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Re-run the current lists over the held mail still on disk: what a list change would now
    flag or clear, before it goes live. Event-log entries keep no content, so only messages
    in the quarantine can be replayed."""
    from dataclasses import replace

    from mailguard.checks import language
    from mailguard.store.sealing import SealError
    from mailguard.text import lexicon

    check = settings.checks["language"]
    if args.folder:
        try:
            check = replace(check, lexicon=lexicon.load(Path(args.folder)))
        except lexicon.LexiconError as e:
            print(f"mailguard: {e}", file=sys.stderr)
            return 2

    async def work(db: Any, quarantine: Any, events: Any) -> int:
        rows = []
        for held in await quarantine.list(None):
            if held.ts < time.time() - args.since or not held.file:
                continue
            try:
                raw = await quarantine.read(held)
            except SealError as e:
                print(f"mailguard: {held.id} skipped: {e}", file=sys.stderr)
                continue
            if raw is None:
                continue
            mail = held.mail(raw)
            before = sorted(f["rule"] for f in held.findings if f["rule"].startswith("language."))
            after = sorted(f.rule_id for f in await language.inspect(mail, check))
            if before != after:
                rows.append({"id": held.id, "status": held.status,
                             "now_flagged": ",".join(sorted(set(after) - set(before))) or "-",
                             "now_cleared": ",".join(sorted(set(before) - set(after))) or "-"})
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(table(rows, ["id", "status", "now_flagged", "now_cleared"]))
        return 0

    return asyncio.run(with_stores(settings, work))


def cmd_wordlists_stats(args: argparse.Namespace, settings: Settings) -> int:
    """Hits per term and per category from the event log: which entries earn their place."""
    from collections import Counter

    terms = {t.id: t for t in settings.checks["language"].lexicon.terms}

    async def work(db: Any, quarantine: Any, events: Any) -> int:
        rows = await events.since(time.time() - args.since)
        per_term: Counter[str] = Counter()
        for row in rows:
            for rule in row["checks"]:
                if rule.startswith("language."):
                    per_term[rule.removeprefix("language.")] += 1
        out = []
        for rule, hits in per_term.most_common():
            category, _, line = rule.partition(":")
            term = terms.get(f"{category}:{line}")
            out.append({"category": category, "term": rule, "hits": hits,
                        "entry": term.text if term else "(no longer listed)",
                        "severity": term.severity if term else ""})
        categories = Counter[str]()
        for row in out:
            categories[row["category"]] += row["hits"]
        if args.json:
            print(json.dumps({"terms": out, "categories": dict(categories),
                              "messages": len(rows)}, indent=2))
        else:
            print(table(out, ["category", "term", "entry", "severity", "hits"]))
            print(f"{len(rows)} messages; " + ", ".join(
                f"{c} {n}" for c, n in categories.most_common()))
        return 0

    return asyncio.run(with_stores(settings, work))


def cmd_wordlists_lint(args: argparse.Namespace, settings: Settings) -> int:
    """Report list problems (exit 1 when there are any) and rules that fire on neutral
    sentences (warnings), for IT to run before a change."""
    from mailguard.text import lexicon, rules

    folder = Path(args.folder) if args.folder else None
    try:
        lists = lexicon.load(folder) if folder else settings.checks["language"].lexicon
    except lexicon.LexiconError as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    words: list[str] = []
    source = Path(args.dictionary) if args.dictionary else next(
        (d for d in lexicon.DICTIONARIES if d.exists()), None)
    if source is not None:
        words = source.read_text(encoding="utf-8", errors="replace").split()
    else:
        print("note: no dictionary found (apt-get install wbritish): stems not checked",
              file=sys.stderr)
    problems, notes = lexicon.lint(lists, words)
    folder = (folder or settings.checks["language"].folder) / "rules"
    try:
        warnings = rules.lint(rules.load(folder), folder)
    except (rules.RulesError, lexicon.LexiconError) as e:
        problems.append(str(e))
        warnings = []
    for problem in problems:
        print(f"problem: {problem}")
    for warning in warnings:
        print(f"warning: {warning}")
    for note in notes:
        print(f"review:  {note}")
    print(f"{len(lists.terms)} terms, {len(problems)} problems, {len(warnings)} warnings, "
          f"{len(notes)} to review" + (f" (dictionary: {source})" if source else ""))
    return 1 if problems else 0


def cmd_wordlists_test(args: argparse.Namespace, settings: Settings) -> int:
    """Every match in a text or a saved message, and the normalisation that found it, so IT
    can see why a word was (or was not) flagged before changing a list."""
    from mailguard import mime
    from mailguard.checks.language import texts
    from mailguard.files.limits import Limits
    from mailguard.files.report import inspect_mail
    from mailguard.model import Client, Envelope, Mail
    from mailguard.text import lexicon, rules

    try:
        lists = (lexicon.load(Path(args.folder)) if args.folder
                 else settings.checks["language"].lexicon)
    except lexicon.LexiconError as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    if not lists.terms:
        print("mailguard: no lists loaded: turn on [checks.language] or give --folder",
              file=sys.stderr)
        return 2
    if args.file:
        raw = Path(args.file).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        mail = Mail(id="TEST", envelope=Envelope("", ()), client=Client(ip=""), raw=raw)
        if mime.header_problem(mail.headers, raw[: mail.header_end]):
            print("mailguard: the file is not a readable message", file=sys.stderr)
            return 2
        language = settings.checks.get("language")
        limits = language.limits if language else Limits()
        sources = texts(mail, "full", inspect_mail(mail, limits))
    else:
        sources = [("text", args.text or "", False)]
    rows = lexicon.explain(lists, sources)
    joined = (rules.load(Path(args.folder) / "rules") if args.folder
              else settings.checks["language"].rules)
    rows += rules.explain(joined, sources)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows, ["where", "category", "heading", "severity", "term", "entry", "how",
                           "matched"]))
    return 0
