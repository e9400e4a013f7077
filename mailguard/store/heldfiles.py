"""Where held messages' sealed bytes are kept: files in the data folder beside the SQLite
store, or rows of the PostgreSQL store itself, so no node's disk holds mail and any node's
desk can open what another held. Both write durably before they return."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Protocol

from mailguard.store.backend import Queries, Store


class HeldFiles(Protocol):
    # Whether write() can join the transaction that records the hold (a row of the store).
    in_store: bool

    async def write(self, name: str, data: bytes, tx: Queries | None = None) -> None: ...
    async def read(self, name: str) -> bytes | None: ...
    async def remove(self, name: str, tx: Queries | None = None) -> None: ...


def write_durably(folder: Path, name: str, data: bytes) -> None:
    """Temporary file, fsync, rename, fsync of the folder: there whole or not at all."""
    tmp = folder / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, folder / name)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FolderFiles:
    """`<data_dir>/quarantine`, 0700, one 0600 file per message."""

    in_store = False

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)

    async def write(self, name: str, data: bytes, tx: Queries | None = None) -> None:
        await asyncio.to_thread(write_durably, self.folder, name, data)

    async def read(self, name: str) -> bytes | None:
        try:
            return await asyncio.to_thread((self.folder / name).read_bytes)
        except FileNotFoundError:
            return None

    async def remove(self, name: str, tx: Queries | None = None) -> None:
        (self.folder / name).unlink(missing_ok=True)


class TableFiles:
    """The `held_files` table: written in the hold's own transaction, so a message and its
    record are committed together (synchronous_commit) or not at all, and no node's crash
    leaves content without a record."""

    in_store = True

    def __init__(self, store: Store) -> None:
        self.store = store

    async def write(self, name: str, data: bytes, tx: Queries | None = None) -> None:
        await (tx or self.store).run(
            "INSERT INTO held_files (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
            "SET data = excluded.data", (name, data))

    async def read(self, name: str) -> bytes | None:
        row = await self.store.one("SELECT data FROM held_files WHERE name = ?", (name,))
        return None if row is None else bytes(row[0])

    async def remove(self, name: str, tx: Queries | None = None) -> None:
        await (tx or self.store).run("DELETE FROM held_files WHERE name = ?", (name,))


def held_files(store: Store, data_dir: Path) -> HeldFiles:
    return TableFiles(store) if store.dialect == "postgresql" else FolderFiles(
        data_dir / "quarantine")
