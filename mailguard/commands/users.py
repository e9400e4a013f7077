"""`mailguard users`: the review desk's accounts (add, passwd, role, totp, disable, list).

Passwords are read from the terminal without echo, or from standard input with
`--password-stdin` for scripts. Every change is written to the audit log.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from mailguard.commands.common import table, with_stores
from mailguard.config import Settings


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("mailguard: the two passwords differ; nothing changed")
    return first


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    from mailguard.store import audit, reviewers

    actor = audit.current_actor()

    async def work(db: Any, quarantine: Any, events: Any) -> int:
        what = args.users_command
        try:
            if what == "list":
                rows = [{"name": r.name, "role": r.role, "totp": "yes" if r.totp else "no",
                         "disabled": "yes" if r.disabled else ""}
                        for r in await reviewers.all_of(db)]
                print(table(rows, ["name", "role", "totp", "disabled"]))
                return 0
            if what == "add":
                await reviewers.add(db, args.name, args.role, _password(args))
                detail = f"account {args.name} added as {args.role}"
            elif what == "passwd":
                await reviewers.set_password(db, args.name, _password(args))
                detail = f"password of {args.name} changed; their sessions ended"
            elif what == "role":
                await reviewers.update(db, args.name, role=args.role)
                detail = f"{args.name} is now {args.role}"
            elif what in ("disable", "enable"):
                await reviewers.update(db, args.name, disabled=int(what == "disable"))
                detail = f"account {args.name} {what}d"
            else:   # totp
                detail = await _totp(db, args, reviewers)
        except reviewers.AccountError as e:
            print(f"mailguard: {e}", file=sys.stderr)
            return 1
        await audit.record(db, actor, "account", None, detail)
        print(detail)
        return 0

    return asyncio.run(with_stores(settings, work))


async def _totp(db: Any, args: argparse.Namespace, reviewers: Any) -> str:
    import pyotp

    if args.off:
        await reviewers.update(db, args.name, totp=None)
        return f"second factor of {args.name} turned off"
    secret = pyotp.random_base32()
    await reviewers.update(db, args.name, totp=secret)
    uri = pyotp.TOTP(secret).provisioning_uri(name=args.name, issuer_name="mailguard")
    print(f"Add this to {args.name}'s authenticator app (or type the key {secret}):\n{uri}")
    return f"second factor of {args.name} turned on"


def add_parser(command: Any) -> None:
    """The `users` subcommands, on the parser `command` makes."""
    from mailguard.store.reviewers import ROLES

    u = command("users", "review desk accounts")
    usub = u.add_subparsers(dest="users_command", required=True)
    usub.add_parser("list", help="every account and its role")
    for name, help in (("add", "a new account"), ("passwd", "set a new password")):
        p = usub.add_parser(name, help=help)
        p.add_argument("name")
        if name == "add":
            p.add_argument("--role", required=True, choices=list(ROLES),
                           help="; ".join(f"{k}: {v}" for k, v in ROLES.items()))
        p.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input")
    r = usub.add_parser("role", help="give an account another role")
    r.add_argument("name")
    r.add_argument("role", choices=list(ROLES))
    for name in ("disable", "enable"):
        usub.add_parser(name, help=f"{name} an account").add_argument("name")
    t = usub.add_parser("totp", help="turn on a second factor (prints the key to scan)")
    t.add_argument("name")
    t.add_argument("--off", action="store_true", help="turn it off instead")
