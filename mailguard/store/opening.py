"""Opens the store the config names, once per process: SQLite in the data folder, or the
shared PostgreSQL store (its schema brought up to date first, under an advisory lock)."""

from __future__ import annotations

import hashlib
import hmac

from mailguard.config import ConfigError, StorageSettings
from mailguard.store import db
from mailguard.store.backend import Store


async def open_store(storage: StorageSettings) -> Store:
    if not storage.shared:
        return await db.connect(storage.data_dir)
    from mailguard.store import migrate
    from mailguard.store.postgres import PostgresStore

    db.prepare_data_dir(storage.data_dir)   # keys and this node's counters still live there
    store = await PostgresStore.open(storage.url, storage.password)
    try:
        await migrate.migrate(store)
        await _same_key(store, storage)
    except BaseException:
        await store.close()
        raise
    return store


def fingerprint(key: bytes) -> str:
    """Names a quarantine key without giving it away: an HMAC under the key."""
    return hmac.new(key, b"mailguard quarantine key", hashlib.sha256).hexdigest()[:32]


async def _same_key(store: Store, storage: StorageSettings) -> None:
    """Every node seals held mail under the one key, or a reviewer on one node could not open
    what another held. The first node to start records the key's fingerprint; a node whose
    key differs will not start. A node whose old keys include the recorded one is a rotation
    (docs/deploy/operations.md): the new key becomes the cluster's."""
    if not storage.quarantine_key:
        return   # check-config: no key made yet, nothing sealed by this node
    mine = fingerprint(storage.quarantine_key)
    async with store.transaction() as tx:
        await tx.run("INSERT INTO cluster (name, value) VALUES ('quarantine_key', ?) "
                     "ON CONFLICT (name) DO NOTHING", (mine,))
        (recorded,) = await tx.one("SELECT value FROM cluster WHERE name = 'quarantine_key'")
        if recorded == mine:
            return
        if recorded in {fingerprint(k) for k in storage.quarantine_old_keys}:
            await tx.run("UPDATE cluster SET value = ? WHERE name = 'quarantine_key'", (mine,))
            return
    raise ConfigError(
        "storage: quarantine key: this node's quarantine key is not the one the shared store's "
        "held mail is sealed with, so its reviewers could not open what other nodes hold, nor "
        "they what it holds. Give every node the same key (the same quarantine_key_file or "
        "quarantine_key_env), then start it again.")
