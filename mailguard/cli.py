"""The `mailguard` command: serve, check-config, check, quarantine …, events, purge, passwd."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mailguard import config
from mailguard.config import Action, ConfigError, Settings

DEFAULT_CONFIG = os.environ.get("MAILGUARD_CONFIG", "config/mailguard.toml")


def parse_age(text: str) -> float:
    """'90m', '12h', '1d', '2w' → seconds."""
    m = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number and s, m, h, d or w, e.g. 1d")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


async def _with_stores(settings: Settings, work: Callable[..., Awaitable[int]]) -> int:
    from mailguard.store import db as store_db
    from mailguard.store.events import EventLog
    from mailguard.store.quarantine import Quarantine

    db = await store_db.connect(settings.storage.data_dir)
    try:
        return await work(db, Quarantine(db, settings.storage.data_dir), EventLog(db))
    finally:
        await db.close()


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    enabled = [f"{n}={'rewrite' if getattr(s, 'rewrite', False) else s.action.value}"
               for n, s in settings.checks.items()]
    print(f"{settings.file}: ok (upstream {settings.upstream.url}; checks: {', '.join(enabled)})")
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Run the checks over a saved .eml, as if the envelope sender were the From address."""
    from mailguard import mime
    from mailguard.model import Client, Envelope, Mail
    from mailguard.pipeline import assess

    raw = Path(args.file).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    headers = mime.parse_headers(raw[: mime.header_end(raw)])
    froms = mime.addresses(headers, "From")
    rcpts = tuple(mime.addresses(headers, "To") + mime.addresses(headers, "Cc"))
    mail = Mail(id="CHECK", envelope=Envelope(args.sender or (froms[0] if froms else ""), rcpts),
                client=Client(ip="127.0.0.1", auth_user=args.auth_user), raw=raw)
    verdict = asyncio.run(assess(mail, settings))
    blocked = verdict.action in (Action.QUARANTINE, Action.REJECT)
    result = {"verdict": verdict.action.value if blocked else "deliver",
              "findings": [{"rule": f.rule_id, "action": f.action.value, "clause": f.clause,
                            "message": f.message, "evidence": f.evidence}
                           for f in verdict.findings]}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"verdict: {result['verdict']}")
        for f in result["findings"]:
            print(f"  {f['rule']} ({f['action']}): {f['message']} [{f['clause']}]")
    return 0


def cmd_events(args: argparse.Namespace, settings: Settings) -> int:
    from mailguard.store.events import dumps

    async def work(db: Any, quarantine: Any, events: Any) -> int:
        rows = await events.since(time.time() - args.since)
        if args.json:
            for row in rows:
                print(dumps(row))
            return 0
        for row in rows:
            row["when"] = _when(row["ts"])
            row["checks"] = ",".join(row["checks"]) or "-"
            row["rcpts"] = row["rcpt_count"]
        print(_table(rows, ["when", "id", "client", "sender", "rcpts", "verdict", "checks",
                            "latency_ms"]))
        return 0

    return asyncio.run(_with_stores(settings, work))


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from mailguard import retention

    async def work(db: Any, quarantine: Any, events: Any) -> int:
        gone, expired = await retention.apply(settings, events, quarantine)
        print(json.dumps({"events_deleted": gone, "quarantine_expired": expired}) if args.json
              else f"deleted {gone} events; expired {expired} held messages")
        return 0

    return asyncio.run(_with_stores(settings, work))


def cmd_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from mailguard import review, trace
    from mailguard.store import audit

    actor = args.actor or audit.current_actor()

    async def work(db: Any, quarantine: Any, events: Any) -> int:
        if args.action == "list":
            items = await quarantine.list(None if args.status == "all" else args.status)
            await audit.record(db, actor, "list", None, f"status={args.status}")
            if args.json:
                for h in items:
                    print(json.dumps(h.summary(), sort_keys=True))
                return 0
            rows = [{**h.summary(), "when": _when(h.ts), "rules": ",".join(
                h.summary()["rules"])} for h in items]
            print(_table(rows, ["when", "id", "status", "sender", "recipients", "rules",
                                "reason"]))
            return 0
        try:
            if args.action == "show":
                held = await quarantine.get(args.id)
                if held is None:
                    raise review.ReviewError(f"no held message with id {args.id}")
                await audit.record(db, actor, "show", args.id, "raw" if args.raw else "")
                if args.raw:
                    data = quarantine.read(held)
                    sys.stdout.buffer.write(data or b"(content removed by retention)\n")
                    return 0
                info = {**held.__dict__, "audit": await audit.trail(db, args.id)}
                if args.json:
                    print(json.dumps(info, indent=2, sort_keys=True))
                else:
                    for key in ("id", "status", "reason", "sender", "recipients",
                                "held_recipients", "client", "auth_user", "size", "note",
                                "last_reply"):
                        print(f"{key:16} {info[key]}")
                    print(f"{'received':16} {_when(held.ts)}")
                    for f in held.findings:
                        print(f"finding          {f['rule']} ({f['action']}): {f['message']} "
                              f"[{f['clause']}] {f['evidence']}")
                    for a in info["audit"]:
                        print(f"audit            {_when(a['ts'])} {a['actor']} {a['action']}"
                              f" {a['detail'] or ''}")
                return 0
            if args.action == "release":
                secret = trace.load_secret(settings.server.stamp_secret_file)
                result = await review.release(settings, quarantine, db, args.id, actor, secret)
                out = {"id": args.id, "delivered": result.delivered, "refused": result.refused,
                       "upstream": result.reply, "released": result.complete}
                print(json.dumps(out) if args.json else
                      f"{args.id}: delivered to {len(result.delivered)}; "
                      + ("released" if result.complete else
                         "still held for: " + "; ".join(f"{r} ({why})" for r, why in
                                                        result.refused.items())))
                return 0 if result.complete else 1
            if args.action == "reject":
                reply = await review.reject(settings, quarantine, db, args.id, actor, args.note)
                print(f"{args.id}: rejected; notice to sender: {reply or 'no sender to notify'}")
                return 0
            if args.action == "delete":
                await review.delete(quarantine, db, args.id, actor)
                print(f"{args.id}: deleted")
                return 0
        except review.ReviewError as e:
            print(f"mailguard: {e}", file=sys.stderr)
            return 1
        return 2

    return asyncio.run(_with_stores(settings, work))


def cmd_dkim_keygen(args: argparse.Namespace) -> int:
    """Write a new signing key (0600) and print the DNS record and the config lines."""
    from mailguard import dkim

    folder = Path(args.out)
    path = folder / f"{args.domain}.{args.selector}.key"
    if path.exists():
        print(f"mailguard: {path} already exists; pick a new selector to rotate keys",
              file=sys.stderr)
        return 2
    pem, value = dkim.keygen(args.algorithm, args.bits)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    print(f"; private key written to {path} (mode 0600)")
    print("; publish this in DNS, then add the config lines below and reload (SIGHUP):")
    print(dkim.txt_record(args.selector, args.domain, value))
    print(f'\n[dkim.domains."{args.domain}"]\nselector = "{args.selector}"\nkey = "{path}"')
    return 0


def cmd_directory_import(args: argparse.Namespace) -> int:
    """Build config/directory.csv from a MIS export, mapping its columns and role words."""
    from mailguard import directory

    def pairs(items: list[str], what: str) -> dict[str, str]:
        out = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"mailguard: {what} {item!r}: write it as NAME=VALUE")
            out[key.strip().lower() if what == "--role-value" else key.strip()] = value.strip()
        return out

    columns = pairs(args.column, "--column")
    unknown = set(columns) - set(directory.COLUMNS)
    if unknown:
        print(f"mailguard: --column: {', '.join(sorted(unknown))} is not one of "
              f"{', '.join(directory.COLUMNS)}", file=sys.stderr)
        return 2
    try:
        text = Path(args.export).read_text(encoding="utf-8-sig")
        contacts = directory.import_mis(text, columns, args.role,
                                        pairs(args.role_value, "--role-value"), args.export)
        out = Path(args.out)
        if args.merge and out.exists():
            contacts = [*directory.Directory.load(out).contacts.values(), *contacts]
        count = directory.write(contacts, out)
    except (OSError, UnicodeDecodeError, directory.DirectoryError) as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    print(f"{out}: {count} contacts; reload mailguard (SIGHUP) to use them")
    return 0


def cmd_wordlists(args: argparse.Namespace, settings: Settings) -> int:
    return {"test": cmd_wordlists_test, "lint": cmd_wordlists_lint,
            "stats": cmd_wordlists_stats}[args.wordlists_command](args, settings)


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
            print(_table(out, ["category", "term", "entry", "severity", "hits"]))
            print(f"{len(rows)} messages; " + ", ".join(
                f"{c} {n}" for c, n in categories.most_common()))
        return 0

    return asyncio.run(_with_stores(settings, work))


def cmd_wordlists_lint(args: argparse.Namespace, settings: Settings) -> int:
    """Report list problems (exit 1 when there are any), for IT to run before a change."""
    from mailguard import lexicon

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
    for problem in problems:
        print(f"problem: {problem}")
    for note in notes:
        print(f"review:  {note}")
    print(f"{len(lists.terms)} terms, {len(problems)} problems, {len(notes)} to review"
          + (f" (dictionary: {source})" if source else ""))
    return 1 if problems else 0


def cmd_wordlists_test(args: argparse.Namespace, settings: Settings) -> int:
    """Every match in a text or a saved message, and the normalisation that found it, so IT
    can see why a word was (or was not) flagged before changing a list."""
    from mailguard import lexicon, mime
    from mailguard.model import Client, Envelope, Mail
    from mailguard.textviews import views

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
        seen = views(mail)
        sources = [("own", seen.own), ("quoted", seen.quoted)]
    else:
        sources = [("text", args.text or "")]
    rows = []
    for where, text in sources:
        normalised = lexicon.normalise(text)
        for hit in lists.scan(text):
            rows.append({"where": where, "category": hit.term.category, "term": hit.term.id,
                         "entry": hit.term.text, "severity": hit.term.severity, "how": hit.how,
                         "matched": normalised[hit.start:hit.end]})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows, ["where", "category", "severity", "term", "entry", "how", "matched"]))
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    from mailguard.auth import hash_password

    password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass(
        f"Password for {args.user}: ")
    if not password:
        print("mailguard: empty password", file=sys.stderr)
        return 2
    print(f"{args.user}:{hash_password(password)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailguard", description=__doc__)
    p.add_argument("--config", default=DEFAULT_CONFIG, help="config file (default %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        c.add_argument("--config", default=argparse.SUPPRESS, help="config file")
        return c

    s = command("serve", "run the gateway")
    s.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    command("check-config", "validate the config file (exit 2 on problems)")
    c = command("check", "run the checks over a saved message")
    c.add_argument("file")
    c.add_argument("--sender")
    c.add_argument("--auth-user")
    c.add_argument("--json", action="store_true")
    e = command("events", "list transactions")
    e.add_argument("--since", type=parse_age, default=parse_age("1d"), help="e.g. 90m, 12h, 1d")
    e.add_argument("--json", action="store_true", help="one JSON object per event")
    pu = command("purge", "apply retention to events and held mail")
    pu.add_argument("--json", action="store_true")
    pw = command("passwd", "print a users-file line for SMTP AUTH (password on stdin)")
    pw.add_argument("user")
    dk = sub.add_parser("dkim", help="DKIM keys")
    dksub = dk.add_subparsers(dest="dkim_command", required=True)
    kg = dksub.add_parser("keygen", help="make a signing key and print its DNS record")
    kg.add_argument("--domain", required=True)
    kg.add_argument("--selector", required=True)
    kg.add_argument("--algorithm", choices=["rsa", "ed25519"], default="rsa")
    kg.add_argument("--bits", type=int, default=2048, choices=[1024, 2048, 3072, 4096])
    kg.add_argument("--out", default="config/dkim", help="folder for the key (default %(default)s)")
    di = sub.add_parser("directory", help="the contacts directory (parents, pupils, staff …)")
    disub = di.add_subparsers(dest="directory_command", required=True)
    im = disub.add_parser("import", help="build the directory CSV from a MIS export")
    im.add_argument("export", help="CSV exported from SIMS, Arbor, Bromcom …")
    im.add_argument("--out", default="config/directory.csv")
    im.add_argument("--column", action="append", default=[], metavar="FIELD=COLUMN",
                    help="which export column holds email, role, name or pupils")
    im.add_argument("--role", choices=["parent", "pupil", "staff", "supplier", "other"],
                    help="one role for every row (e.g. a parents' contact list)")
    im.add_argument("--role-value", action="append", default=[], metavar="WORD=ROLE",
                    help="map the export's word to a role, e.g. Mother=parent")
    im.add_argument("--merge", action="store_true", help="keep the contacts already in --out")
    wl = command("wordlists", "tune the language lists")
    wlsub = wl.add_subparsers(dest="wordlists_command", required=True)
    wt = wlsub.add_parser("test", help="every match in a text or message, and why")
    wt.add_argument("text", nargs="?")
    wt.add_argument("--file", help="a saved message (.eml): own words and quoted text apart")
    wt.add_argument("--folder", help="lists to test (default: [checks.language] folder)")
    wt.add_argument("--json", action="store_true")
    ws = wlsub.add_parser("stats", help="hits per term and category from the event log")
    ws.add_argument("--since", type=parse_age, default=parse_age("30d"), help="e.g. 7d, 30d")
    ws.add_argument("--json", action="store_true")
    wn = wlsub.add_parser("lint", help="duplicates, allowlist clashes, stems that catch ordinary words")
    wn.add_argument("--folder", help="lists to check (default: [checks.language] folder)")
    wn.add_argument("--dictionary", help="word list (default: /usr/share/dict/british-english)")
    q = command("quarantine", "review held mail")
    q.add_argument("--actor", help="who is acting (default: your login name)")
    qsub = q.add_subparsers(dest="action", required=True)
    ql = qsub.add_parser("list")
    ql.add_argument("--status", default="held", choices=["held", "released", "rejected",
                                                         "deleted", "expired", "all"])
    ql.add_argument("--json", action="store_true")
    qs = qsub.add_parser("show")
    qs.add_argument("id")
    qs.add_argument("--raw", action="store_true", help="print the whole message")
    qs.add_argument("--json", action="store_true")
    qr = qsub.add_parser("release")
    qr.add_argument("id")
    qr.add_argument("--json", action="store_true")
    qj = qsub.add_parser("reject")
    qj.add_argument("id")
    qj.add_argument("--note", default="", help="told to the sender")
    qd = qsub.add_parser("delete")
    qd.add_argument("id")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "passwd":
        return cmd_passwd(args)
    if args.command == "dkim":
        return cmd_dkim_keygen(args)
    if args.command == "directory":
        return cmd_directory_import(args)
    if args.command == "serve":
        from mailguard.launch import serve

        return serve(Path(args.config), worker=args.worker)
    # Commands that only read the stores do not need the checks' lists or the DKIM keys.
    store_only = args.command in ("events", "purge") or (
        args.command == "quarantine" and args.action in ("list", "show", "delete"))
    try:
        settings = config.load(args.config, checks=not store_only)
    except ConfigError as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    handlers = {"check-config": cmd_check_config, "check": cmd_check, "events": cmd_events,
                "purge": cmd_purge, "quarantine": cmd_quarantine,
                "wordlists": cmd_wordlists}
    return handlers[args.command](args, settings)
