"""`mailguard store status|migrate`: which store this config uses and whether its schema is
up to date (PostgreSQL's migrations are in mailguard/store/migrations; a gateway applies them
itself when it starts, under an advisory lock, so `migrate` is for doing it beforehand)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any
from urllib.parse import urlsplit

from mailguard.config import Settings


def add_parser(command: Any) -> None:
    s = command("store", "the store: SQLite in the data folder or the shared PostgreSQL")
    sub = s.add_subparsers(dest="store_command", required=True)
    sub.add_parser("status", help="engine, schema version and what it holds")
    sub.add_parser("migrate", help="bring the schema up to date (the gateway does at start)")


def where(settings: Settings) -> str:
    """The store in words, without secrets."""
    storage = settings.storage
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
        print(f"store: {where(settings)}")
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


def cmd_store(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_status(settings, migrate_first=args.store_command == "migrate"))
