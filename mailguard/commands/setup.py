"""What IT runs to set mailguard up: DKIM keys, SMTP AUTH users, the contacts directory."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path


def cmd_dkim_keygen(args: argparse.Namespace) -> int:
    """Write a new signing key (0600) and print the DNS record and the config lines."""
    from mailguard.delivery import dkim

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
    from mailguard.school import directory

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
        contacts, problems = directory.import_mis(text, columns, args.role,
                                                  pairs(args.role_value, "--role-value"),
                                                  args.export)
        for problem in problems:
            print(f"skipped: {problem}", file=sys.stderr)
        if problems and not contacts:
            print("mailguard: no usable rows; the directory was not written", file=sys.stderr)
            return 2
        out = Path(args.out)
        if args.merge and out.exists():
            contacts = [*directory.Directory.load(out).contacts.values(), *contacts]
        count = directory.write(contacts, out)
    except (OSError, UnicodeDecodeError, directory.DirectoryError) as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    print(f"{out}: {count} contacts"
          + (f" ({len(problems)} rows skipped, listed above)" if problems else "")
          + "; reload mailguard (SIGHUP) to use them")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    from mailguard.server.auth import hash_password

    password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass(
        f"Password for {args.user}: ")
    if not password:
        print("mailguard: empty password", file=sys.stderr)
        return 2
    print(f"{args.user}:{hash_password(password)}")
    return 0
