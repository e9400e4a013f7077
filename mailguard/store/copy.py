"""`mailguard store copy`: a single-node install's SQLite store moved into the shared
PostgreSQL store, held messages included (still sealed: the cluster keeps the install's
quarantine key), in one transaction, and counted on both sides before it is committed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailguard.store.backend import Queries, Store
from mailguard.store.heldfiles import FolderFiles
from mailguard.store.sealing import Sealer, SealError

# What moves, in an order that keeps references whole; identity columns keep their numbers.
TABLES = ("reviewers", "quarantine", "held_rules", "comments", "false_positives", "audit",
          "notices", "events", "history")
IDENTITY = {"audit", "comments", "false_positives", "notices"}   # `seq` made by the database
BATCH = 1000


class CopyError(Exception):
    """The copy was not made (nothing was written to the target); the words say why."""


@dataclass(frozen=True)
class Counted:
    table: str
    source: int
    target: int


async def _source_columns(store: Queries, table: str) -> list[str]:
    """The SQLite table's columns (PRAGMA table_info: also for an empty table)."""
    return [r[1] for r in await store.all(f"PRAGMA table_info({table})")]


async def copy(source: Store, source_dir: Path, target: Store) -> list[Counted]:
    """Every row of every table, and every held file, from `source` to the empty `target`
    (`sealed_alike` first: the held mail must open with the target's quarantine key)."""
    for table in ("quarantine", "events", "reviewers", "audit"):
        (n,) = await target.one(f"SELECT count(*) FROM {table}")
        if n:
            raise CopyError(f"the target store already holds {n} rows in {table}: copy into "
                            "an empty database (the gateways' first start on it makes the "
                            "schema, and nothing else)")
    files = FolderFiles(source_dir / "quarantine")
    counted: list[Counted] = []
    async with target.transaction() as tx:
        for table in TABLES:
            columns = await _source_columns(source, table)
            have = set(await _columns_in(tx, table))
            columns = [c for c in columns if c in have]   # subject_hint etc. where both keep it
            total = 0
            if columns:
                marks = ", ".join("?" * len(columns))
                overriding = " OVERRIDING SYSTEM VALUE" if table in IDENTITY else ""
                sql = (f"INSERT INTO {table} ({', '.join(columns)}){overriding} "
                       f"VALUES ({marks})")
                rows = await source.all(f"SELECT {', '.join(columns)} FROM {table}")
                for start in range(0, len(rows), BATCH):
                    await tx.run_many(sql, [tuple(r) for r in rows[start:start + BATCH]])
                total = len(rows)
                if table in IDENTITY and total:
                    await tx.one(f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'), "
                                 f"(SELECT max(seq) FROM {table}))")
            (landed,) = await tx.one(f"SELECT count(*) FROM {table}")
            counted.append(Counted(table, total, landed))
        names = [r[0] for r in await source.all("SELECT file FROM quarantine WHERE file != ''")]
        for name in names:
            blob = await files.read(name)
            if blob is None:
                raise CopyError(f"held message file {name} is missing from "
                                f"{source_dir / 'quarantine'}: restore it from the backup first")
            await tx.run("INSERT INTO held_files (name, data) VALUES (?, ?)", (name, blob))
        (landed,) = await tx.one("SELECT count(*) FROM held_files")
        counted.append(Counted("held message files", len(names), landed))
        wrong = [c for c in counted if c.source != c.target]
        if wrong:
            raise CopyError("the counts differ, so nothing was committed: " + "; ".join(
                f"{c.table} {c.source} here, {c.target} there" for c in wrong))
    return counted


async def sealed_alike(source: Store, source_dir: Path, sealer: Sealer) -> None:
    """The install's held mail opens with this config's quarantine key (one message tried)."""
    row = await source.one("SELECT id, file FROM quarantine WHERE file != '' LIMIT 1")
    if row is None:
        return
    blob = await FolderFiles(source_dir / "quarantine").read(row[1])
    if blob is None:
        raise CopyError(f"held message file {row[1]} is missing from {source_dir / 'quarantine'}:"
                        " restore it from the backup first")
    try:
        sealer.open(blob, row[0])
    except (SealError, ValueError) as e:
        raise CopyError(f"the held mail in {source_dir} is sealed under another key than this "
                        f"config's quarantine key ({e}): give the shared store's nodes the "
                        "install's own key (quarantine_key_file)") from None


async def _columns_in(tx: Queries, table: str) -> list[str]:
    rows = await tx.all("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                        (table,))
    return [r[0] for r in rows]
