"""`mailguard store status|migrate`: which store this config uses and whether its schema is
up to date (PostgreSQL's migrations are in mailguard/store/migrations; a gateway applies them
itself when it starts, under an advisory lock, so `migrate` is for doing it beforehand)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailguard.config import Settings, StorageSettings


def add_parser(command: Any) -> None:
    s = command("store", "the store: SQLite in the data folder or the shared PostgreSQL")
    sub = s.add_subparsers(dest="store_command", required=True)
    sub.add_parser("status", help="engine, schema version and what it holds")
    sub.add_parser("migrate", help="bring the schema up to date (the gateway does at start)")
    c = sub.add_parser("copy", help="move a single-node install's store into the shared one")
    c.add_argument("source", help="sqlite:DATA_FOLDER, the install's data folder")
    c.add_argument("target", nargs="?", help="postgresql://… (default: this config's url)")


def where(storage: StorageSettings) -> str:
    """The store in words, without secrets."""
    if not storage.shared:
        return f"SQLite, {storage.data_dir / 'mailguard.db'}"
    url = urlsplit(storage.url)
    return f"PostgreSQL, database {url.path.strip('/')} on {url.hostname}:{url.port or 5432}"


async def _status(settings: Settings, migrate_first: bool) -> int:
    from mailguard.store import db as sqlite_db
    from mailguard.store import migrate
    from mailguard.store.opening import open_store

    store = await open_store(settings.storage)   # brings the schema up to date, as a start does
    try:
        print(f"store: {where(settings.storage)}")
        if store.dialect == "postgresql":
            applied, pending = await migrate.status(store)  # type: ignore[arg-type]
            print(f"schema: migrations {', '.join(map(str, applied)) or 'none'} applied"
                  + (f"; to apply: {', '.join(m.path.name for m in pending)}" if pending else
                     ", up to date"))
        else:
            (version,) = await store.one("PRAGMA user_version")
            print(f"schema: version {version} of {sqlite_db.VERSION}"
                  + (", up to date" if version >= sqlite_db.VERSION else ""))
        if not migrate_first:
            for table, label in (("quarantine", "held messages (all statuses)"),
                                 ("events", "events"), ("reviewers", "reviewer accounts"),
                                 ("audit", "audit entries")):
                (n,) = await store.one(f"SELECT count(*) FROM {table}")
                print(f"{label}: {n}")
    finally:
        await store.close()
    return 0


async def _copy(settings: Settings, source: str, target: str | None) -> int:
    from mailguard.store import db as sqlite_db
    from mailguard.store.copy import CopyError, copy, sealed_alike
    from mailguard.store.opening import open_store
    from mailguard.store.sealing import Sealer

    if not source.startswith("sqlite:") or not source.removeprefix("sqlite:"):
        print("mailguard: store copy: the source is sqlite:DATA_FOLDER (the folder that holds "
              "mailguard.db)", file=sys.stderr)
        return 2
    folder = Path(source.removeprefix("sqlite:"))
    if not (folder / "mailguard.db").is_file():
        print(f"mailguard: store copy: {folder / 'mailguard.db'} does not exist", file=sys.stderr)
        return 2
    storage = settings.storage if target is None else dataclasses.replace(settings.storage,
                                                                         url=target)
    if not storage.shared:
        print("mailguard: store copy: the target is a postgresql:// store (give it, or set "
              "[storage] url)", file=sys.stderr)
        return 2
    sealer = Sealer(storage.quarantine_key, storage.quarantine_old_keys)
    old = await sqlite_db.connect(folder)
    try:
        # Before the target is opened (which records this config's key as the cluster's).
        await sealed_alike(old, folder, sealer)
        new = await open_store(storage)
        try:
            counted = await copy(old, folder, new)
        finally:
            await new.close()
    except CopyError as e:
        print(f"mailguard: store copy: {e}", file=sys.stderr)
        return 1
    finally:
        await old.close()
    for c in counted:
        print(f"{c.table}: {c.source} copied, {c.target} in the shared store")
    print(f"done: {where(storage)} now holds everything {folder} held. Point every node's "
          "[storage] url at it; the old data folder can be archived.")
    return 0


def cmd_store(args: argparse.Namespace, settings: Settings) -> int:
    if args.store_command == "copy":
        return asyncio.run(_copy(settings, args.source, args.target))
    return asyncio.run(_status(settings, migrate_first=args.store_command == "migrate"))
