"""The `mailguard` command: serve, check-config, check, quarantine …, events, purge, passwd,
users …"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from mailguard import config
from mailguard.commands import (
    common,
    doctor,
    history,
    review,
    setup,
    sources,
    store,
    users,
    wordlists,
)
from mailguard.config import ConfigError, Settings
from mailguard.model import Action
from mailguard.server import certificates
from mailguard.store import db as store_db
from mailguard.store.backend import errors as store_errors

DEFAULT_CONFIG = "config/mailguard.toml"
CONFIG_ENV = "MAILGUARD_CONFIG"


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    enabled = [f"{n}={'rewrite' if getattr(s, 'rewrite', False) else s.action.value}"
               for n, s in settings.checks.items()]
    print(f"{settings.file}: ok (upstream {settings.upstream.url}; checks: {', '.join(enabled)})")
    for problem in settings.directory.problems if settings.directory else ():
        print(f"warning: directory row skipped: {problem}")
    storage = settings.storage
    print(f"held mail is sealed (AES-256-GCM) with the key from {storage.quarantine_key_source}")
    if storage.quarantine_key_source.startswith("file ") and storage.data_dir.resolve() in Path(
            storage.quarantine_key_source[5:]).resolve().parents:
        print("warning: the quarantine key is in the data folder, so a copy of that folder can "
              "be read: set [storage] quarantine_key_file or quarantine_key_env to keep it apart")
    for warning in certificates.warnings(settings):
        print(f"warning: {warning}")
    for warning in _language_warnings(settings) + _misdirected_warnings(settings):
        print(f"warning: {warning}")
    for warning in _milter_warnings(settings):
        print(f"warning: {warning}")
    print("who may relay:")
    for source in settings.sources.items:
        print(f"  {source.explain(settings.organisation.name)}")
    ranges = settings.sources.ranges
    print(f"cloud ranges: {ranges.file}, dated {ranges.date} "
          "(a newer file: mailguard sources update FILE)")
    if settings.preset:
        print(f"preset {settings.preset}; this file overrides its "
              + (", ".join(settings.preset_overridden) or "nothing"))
    return 0


def _milter_warnings(settings: Settings) -> list[str]:
    """What `mailguard milter` does otherwise than `mailguard serve` with this config."""
    out = []
    bcc = settings.checks.get("bcc")
    if getattr(bcc, "rewrite", False) and getattr(bcc, "mode", "") == "split":
        out.append("checks.bcc.mode = \"split\" is not possible in milter mode (the MTA queues "
                   "one message for all its recipients): `mailguard milter` hides the parents' "
                   "addresses as mode \"bcc\" does; `mailguard serve` sends a copy each")
    if not settings.milter.loopback:
        out.append(f"milter.listen = {settings.milter.listen!r} is reachable from other "
                   "machines, and whatever connects there can have mail checked and held: "
                   "listen on loopback or a UNIX socket")
    return out


def _language_warnings(settings: Settings) -> list[str]:
    """What the language check cannot do with this machine or config, said before it matters."""
    language = settings.checks.get("language")
    if language is None:
        return []
    terms = language.lexicon.terms
    out = []
    if any(t.near for t in terms) and language.lexicon.dictionary is None:
        out.append("language: near spellings (# near: yes) are off: no word list to tell real "
                   "words from them (apt-get install wbritish)")
    if any(t.roles for t in terms) and settings.directory is None:
        out.append("language: entries for pupils (roles=, grooming signals) find nothing "
                   "without a [directory] that lists pupils")
    return out


def _misdirected_warnings(settings: Settings) -> list[str]:
    """The misdirected check's pupil-parent signal needs to know whose children are whose."""
    check = settings.checks.get("misdirected")
    if check is None or check.pupil is Action.OFF or check.families:
        return []
    return ["misdirected: no parent in the directory lists pupils (the `pupils` column), so "
            "mail about one pupil to another pupil's parent cannot be found: add it "
            "(mailguard directory import … --column pupils=…)"]


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailguard", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help)

    s = command("serve", "run the gateway")
    s.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    command("milter", "run the gateway as a milter inside the school's own Postfix or Sendmail")
    command("desk", "run the review desk alone (on the shared store: one desk for every node)")
    command("check-config", "validate the config file (exit 2 on problems)")
    k = command("keys", "print every config key, its default and meaning (from the schema)")
    k.add_argument("--write", metavar="README", help="bring the README's key table up to date")
    c = command("check", "run the checks over a saved message")
    c.add_argument("file")
    c.add_argument("--sender")
    c.add_argument("--auth-user")
    c.add_argument("--json", action="store_true")
    e = command("events", "list transactions")
    e.add_argument("--since", type=common.parse_age, default=common.parse_age("1d"), help="e.g. 90m, 12h, 1d")
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
    ws.add_argument("--since", type=common.parse_age, default=common.parse_age("30d"), help="e.g. 7d, 30d")
    ws.add_argument("--json", action="store_true")
    wr = wlsub.add_parser("replay", help="what the current lists would flag or clear in held mail")
    wr.add_argument("--since", type=common.parse_age, default=common.parse_age("30d"))
    wr.add_argument("--folder", help="lists to try (default: [checks.language] folder)")
    wr.add_argument("--json", action="store_true")
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
    qsub.add_parser("rekey", help="seal all held mail under the current key (key rotation)")
    users.add_parser(command)
    sources.add_parser(command)
    doctor.add_parser(command)
    store.add_parser(command)
    history.add_parser(command)
    _everywhere(p, top=True)
    return p


def _everywhere(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """--config and --preset before or after any subcommand (`mailguard --config F quarantine
    list` and `mailguard quarantine list --config F` alike). Below the top they default to
    SUPPRESS, so a subcommand that is not given one keeps what was said before it."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--config", default=default, help=(
        f"config file (default ${CONFIG_ENV}, else {DEFAULT_CONFIG})"))
    parser.add_argument("--preset", default=default, help=(
        "a trust's policy preset (config/presets/), under the config file's own settings"))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _everywhere(child)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.config = args.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    if args.command not in ("serve", "milter") and hasattr(signal, "SIGPIPE"):
        # `mailguard events | head` ends quietly, as other commands do. Not for serve, where
        # a peer closing its socket must be an error to handle, not the end of the process.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if args.preset:   # through the environment, so worker processes and reloads use it too
        os.environ[config.PRESET_ENV] = args.preset
    if args.command == "keys":
        from mailguard.settings import keys

        if args.write:
            print(f"{args.write}: " + ("updated" if keys.write(Path(args.write))
                                       else "already up to date"))
        else:
            print(keys.table())
        return 0
    if args.command == "passwd":
        return setup.cmd_passwd(args)
    if args.command == "dkim":
        return setup.cmd_dkim_keygen(args)
    if args.command == "directory":
        return setup.cmd_directory_import(args)
    if args.command == "serve":
        from mailguard.server.launch import serve

        return serve(Path(args.config), worker=args.worker)
    if args.command == "milter":
        from mailguard.server.launch import serve

        return serve(Path(args.config), milter=True)
    if args.command == "desk":
        from mailguard.server.launch import desk

        return desk(Path(args.config))
    # Commands that only read the stores do not need the checks' lists or the DKIM keys.
    store_only = args.command in ("events", "purge", "users", "sources", "store", "history") or (
        args.command == "quarantine" and args.action in ("list", "show", "delete", "rekey"))
    try:
        # check-config builds everything a start would, and writes nothing (no key made).
        settings = config.load(args.config, checks=not store_only,
                               create=args.command != "check-config")
    except ConfigError as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    handlers = {"check-config": cmd_check_config, "check": cmd_check,
                "events": review.cmd_events, "purge": review.cmd_purge,
                "quarantine": review.cmd_quarantine, "wordlists": wordlists.cmd_wordlists,
                "users": users.cmd_users, "sources": sources.cmd_sources,
                "doctor": doctor.cmd_doctor, "store": store.cmd_store,
                "history": history.cmd_history}
    try:
        return handlers[args.command](args, settings)
    except ConfigError as e:   # found only once the store is open (a cluster's key)
        print(f"mailguard: {args.config}: {e}", file=sys.stderr)
        return 2
    except (*store_errors(), OSError) as e:   # a full disk, a locked or unreachable store
        print(f"mailguard: {store_db.problem(e, settings.storage.data_dir)}", file=sys.stderr)
        return 1
