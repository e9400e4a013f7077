"""The store's contract, on both engines: SQLite in a data folder and a real PostgreSQL server
(tests/pgserver.py, started for the session). What the gateway, the desk and the commands
rely on must hold the same on each: a hold is there whole once `hold` returns, its bytes come
back as they went in, a notice is claimed by one node only, a failed transaction leaves
nothing, and a sender search does not care about case.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import time
from pathlib import Path

import pytest
from conftest import message

from mailguard.config import StorageSettings
from mailguard.model import Action, Client, Envelope, Finding, Mail
from mailguard.notices import outbox
from mailguard.store import audit, reviewers, stats
from mailguard.store.events import Event, EventLog
from mailguard.store.opening import open_store
from mailguard.store.quarantine import Quarantine

pytestmark = pytest.mark.own_store   # each test chooses its stores itself

RAW = (b"From: Teacher <teacher@example.sch.uk>\r\nTo: parent@gmail.com\r\n"
       b"Subject: Amelia's report\r\n\r\nShe is doing well.\r\n")
THREAT = Finding(check="language", rule="threats:4", action=Action.QUARANTINE,
                 clause="Vale 4.2", message="a threat", advice="rephrase it")


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageSettings:
    base = StorageSettings(data_dir=tmp_path / "var", event_retention_days=90,
                           quarantine_retention_days=30, quarantine_key=secrets.token_bytes(32))
    if request.param == "sqlite":
        return base
    server = request.getfixturevalue("postgres")
    return dataclasses.replace(base, url=server.fresh_database(), password=server.password)


def mail(n: int = 1, sender: str = "Teacher@Example.sch.uk") -> Mail:
    return Mail(id=f"M{n}-{secrets.token_hex(3)}", envelope=Envelope(sender, ("parent@gmail.com",)),
                client=Client(ip="192.0.2.7", auth_user="teacher"), raw=RAW)


async def test_a_hold_comes_back_whole_and_sealed(storage):
    store = await open_store(storage)
    try:
        q = Quarantine(store, storage.data_dir, storage.quarantine_key)
        m = mail()
        await q.hold(m, (THREAT,), "language")
        held = await q.get(m.id)
        assert held is not None and held.status == "held"
        assert held.subject == "Amelia's report"           # opened for the reviewer
        assert held.findings[0]["rule"] == "language.threats:4"
        assert held.safeguarding == 1
        assert await q.read(held) == RAW
        assert [h.id for h in await q.list()] == [m.id]
        # Sealed at rest: neither the subject nor the body is readable in the store itself.
        row = await store.one("SELECT subject FROM quarantine WHERE id = ?", (m.id,))
        assert "Amelia" not in row["subject"]
        if storage.shared:   # the node's own disk holds no mail
            assert not (storage.data_dir / "quarantine").exists()
            (blob,) = await store.one("SELECT data FROM held_files WHERE name = ?", (held.file,))
            assert b"doing well" not in bytes(blob)
        await q.update(m.id, status="released", note="fine")
        assert (await q.get(m.id)).status == "released"
    finally:
        await store.close()


async def test_retention_removes_the_content_and_says_so_in_the_trail(storage):
    store = await open_store(storage)
    try:
        q = Quarantine(store, storage.data_dir, storage.quarantine_key)
        old, new = mail(1), dataclasses.replace(mail(2))
        await q.hold(dataclasses.replace(old, received_at=time.time() - 40 * 86400), (THREAT,), "x")
        await q.hold(new, (THREAT,), "x")
        assert await q.expire(time.time() - 30 * 86400) == 1
        gone = await q.get(old.id)
        assert gone.status == "expired" and gone.file == "" and await q.read(gone) is None
        assert await q.read(await q.get(new.id)) == RAW
        trail = await audit.trail(store, old.id)
        assert [(t["actor"], t["action"]) for t in trail] == [("retention", "purge")]
    finally:
        await store.close()


async def test_events_are_kept_searched_without_case_and_purged(storage):
    store = await open_store(storage)
    log = EventLog(store)
    try:
        now = time.time()
        log.record(Event(id="E1", client="192.0.2.7", verdict="delivered", sender="Teacher@Example.sch.uk",
                         checks=("language.threats:4",), latency_ms=12.5, tls=True, ts=now))
        log.record(Event(id="E2", client="192.0.2.7", verdict="quarantined", sender="other@x.org",
                         ts=now - 100 * 86400))
        await log.flush()
        # A message's later event replaces its first (a release after a hold).
        log.record(Event(id="E1", client="192.0.2.7", verdict="delivered", sender="Teacher@Example.sch.uk",
                         checks=("language.threats:4",), latency_ms=20.0, tls=True, ts=now))
        await log.flush()
        found, total = await log.search(sender="teacher@example")
        assert total == 1 and found[0]["id"] == "E1" and found[0]["latency_ms"] == 20.0
        assert found[0]["tls"] is True and found[0]["checks"] == ["language.threats:4"]
        rules = await stats.per_rule(store, now - 86400)
        assert [(r.rule, r.hits) for r in rules] == [("language.threats:4", 1)]
        days = await stats.per_day(store, now - 86400)
        assert sum(v.get("delivered", 0) for v in days.values()) == 1
        assert await log.purge(now - 90 * 86400) == 1
        assert [e["id"] for e in await log.since(0)] == ["E1"]
    finally:
        await store.close()


async def test_a_failed_transaction_leaves_nothing(storage):
    store = await open_store(storage)
    try:
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await audit.record(tx, "dpo", "release", "Q1", "half done")
                raise RuntimeError("the node died here")
        assert await audit.trail(store) == []
        async with store.transaction() as tx:
            await audit.record(tx, "dpo", "release", "Q1", "done")
        assert [t["detail"] for t in await audit.trail(store)] == ["done"]
    finally:
        await store.close()


async def test_reviewer_accounts(storage):
    store = await open_store(storage)
    try:
        await reviewers.add(store, "dpo", "dpo", "correct horse battery")
        assert (await reviewers.verify(store, "dpo", "correct horse battery")).role == "dpo"
        assert await reviewers.verify(store, "dpo", "wrong password here") is None
        await reviewers.update(store, "dpo", disabled=True)
        assert await reviewers.verify(store, "dpo", "correct horse battery") is None
        with pytest.raises(reviewers.AccountError, match="no account named nobody"):
            await reviewers.set_password(store, "nobody", "long enough password")
    finally:
        await store.close()


async def test_two_nodes_claim_each_notice_once(storage):
    """Two gateways (two stores on the same database) claim the same pending notices at the
    same moment: every notice is taken by exactly one of them."""
    first, second = await open_store(storage), await open_store(storage)
    try:
        now = time.time()
        await first.run_many("INSERT INTO notices (ts, qid, recipient, kind) VALUES (?, ?, ?, ?)",
                             [(now, f"Q{i}", "dpo@example.sch.uk", "reviewer") for i in range(200)])
        seqs = [r[0] for r in await first.all("SELECT seq FROM notices ORDER BY seq")]
        got = await asyncio.gather(*(outbox._claim(store, seqs[i::5], now, False)
                                     for i in range(5) for store in (first, second)))
        taken = [seq for claimed in got for seq in claimed]
        assert sorted(taken) == seqs   # every one taken, none twice
    finally:
        await first.close()
        await second.close()


async def test_postgres_migrations_run_once_whoever_starts_first(postgres, tmp_path):
    """Three nodes start at once on an empty database: the schema is made once (an advisory
    lock), and `status` says nothing is left to apply."""
    from mailguard.store import migrate
    from mailguard.store.postgres import PostgresStore

    url = postgres.fresh_database()
    storage = StorageSettings(data_dir=tmp_path, event_retention_days=90,
                              quarantine_retention_days=30, url=url, password=postgres.password)
    stores = await asyncio.gather(*(open_store(storage) for _ in range(3)))
    try:
        assert isinstance(stores[0], PostgresStore)
        rows = await stores[0].all("SELECT version FROM schema_migrations")
        assert [r[0] for r in rows] == [m.version for m in migrate.known()]
        applied, pending = await migrate.status(stores[0])
        assert pending == [] and applied == [m.version for m in migrate.known()]
    finally:
        for s in stores:
            await s.close()


async def test_an_unreachable_postgres_is_a_clear_error(tmp_path):
    import psycopg
    from postfix import free_port

    from mailguard.store.db import problem

    storage = StorageSettings(data_dir=tmp_path, event_retention_days=90,
                              quarantine_retention_days=30,
                              url=f"postgresql://mailguard@127.0.0.1:{free_port()}/mailguard",
                              password="x")
    os.environ.pop("PGPASSWORD", None)
    with pytest.raises(psycopg.Error) as failed:
        await open_store(storage)
    words = problem(failed.value, tmp_path)
    assert words is not None and "cannot be reached" in words and "451" in words


@pytest.mark.parametrize(("storage_table", "problem"), [
    ({"url": "postgresql://mailguard:hunter2@db/mailguard"},
     r"storage\.url: .*holds a password: put it in password_env or password_file"),
    ({"url": "mysql://db/mailguard"}, r'storage\.url: .*use "sqlite:" or "postgresql://'),
    ({"url": "postgresql://db"}, r"storage\.url: .*needs a host and a database"),
    ({"password_env": "PGPASS"}, r"storage: .*are for a postgresql:// url"),
    ({"url": "postgresql://mailguard@db/mailguard", "password_env": "MAILGUARD_NO_SUCH_VAR"},
     r"storage\.password_env: the environment variable MAILGUARD_NO_SUCH_VAR is not set"),
])
def test_store_settings_are_checked(tmp_path, storage_table, problem):
    from conftest import toml_dump

    from mailguard import config

    path = tmp_path / "mailguard.toml"
    path.write_text(toml_dump({"organisation": {"name": "T", "domains": ["example.sch.uk"]},
                               "storage": {"data_dir": str(tmp_path / "var"), **storage_table}}))
    with pytest.raises(config.ConfigError, match=problem) as failed:
        config.load(path, checks=False, create=False)
    assert str(failed.value).startswith(str(path))
    assert "hunter2" not in str(failed.value)


async def test_two_nodes_run_retention_at_once_and_purge_each_message_once(storage):
    first, second = await open_store(storage), await open_store(storage)
    try:
        q1 = Quarantine(first, storage.data_dir, storage.quarantine_key)
        q2 = Quarantine(second, storage.data_dir, storage.quarantine_key)
        old = time.time() - 40 * 86400
        for n in range(6):
            await q1.hold(dataclasses.replace(mail(n), received_at=old), (THREAT,), "x")
        done = await asyncio.gather(q1.expire(time.time() - 30 * 86400),
                                    q2.expire(time.time() - 30 * 86400))
        assert sum(done) == 6
        purges = [t for t in await audit.trail(first) if t["action"] == "purge"]
        assert len(purges) == 6 and len({t["quarantine_id"] for t in purges}) == 6
        assert all(h.file == "" and h.status == "expired" for h in await q2.list(None))
    finally:
        await first.close()
        await second.close()


async def test_a_store_from_before_the_checks_column_counts_its_held_mail(tmp_path):
    """A version 4 SQLite store (held messages, no `checks` column) is brought up to date
    when opened, and the desk's counts per check include what it already held."""
    import sqlite3

    from mailguard.store import queue

    storage = StorageSettings(data_dir=tmp_path / "var", event_retention_days=90,
                              quarantine_retention_days=30, quarantine_key=secrets.token_bytes(32))
    store = await open_store(storage)
    q = Quarantine(store, storage.data_dir, storage.quarantine_key)
    other = Finding(check="identity", rule="foreign_from", action=Action.QUARANTINE,
                    clause="x", message="m", advice="a")
    await q.hold(mail(1), (THREAT,), "x")
    await q.hold(mail(2), (THREAT, other), "x")
    await store.close()
    with sqlite3.connect(storage.data_dir / "mailguard.db") as old:
        old.execute("DROP INDEX quarantine_status_checks")
        old.execute("ALTER TABLE quarantine DROP COLUMN checks")
        old.execute("PRAGMA user_version = 4")
    store = await open_store(storage)
    try:
        assert await queue.counts(store, "held", ("1 = 1", ())) == {"language": 2, "identity": 1}
        (index,) = await store.one("SELECT count(*) FROM sqlite_master WHERE name = ?",
                                   ("quarantine_status_checks",))
        assert index == 1
    finally:
        await store.close()


async def test_recipient_history_is_shared_between_nodes_and_pruned_once(storage):
    """Two nodes' histories on one store: what one delivered, the other knows after its
    next read; pruning forgets old pairs for both; only hashes are kept."""
    import time as clock

    from mailguard.store.history import DAY, History, history_key

    key = history_key(b"instance secret")
    stores = [await open_store(storage), await open_store(storage)]
    try:
        a, b = History(), History()
        await a.attach(stores[0], key)
        await b.attach(stores[1], key)
        now = clock.time()
        a.saw("Teacher@Example.sch.uk", ["parent@gmail.com"], now)
        a.saw("teacher@example.sch.uk", ["old@gmail.com"], now - 400 * DAY)
        await a.flush()
        assert not b.known("teacher@example.sch.uk", "parent@gmail.com")
        await b._read(b._seen_up_to - 1)   # what the refresh loop does every minute
        assert b.known("teacher@example.sch.uk", "PARENT@gmail.com")
        assert b.contacts("teacher@example.sch.uk") == 2
        rows = await stores[1].all("SELECT pair, sender, first_seen, last_seen FROM history")
        assert len(rows) == 2 and all(len(bytes(r[0])) == 16 for r in rows)
        assert b"parent" not in b"".join(bytes(r[0]) + bytes(r[1]) for r in rows)
        assert await b.prune(now - 365 * DAY) == 1
        assert await a.prune(now - 365 * DAY) == 0   # b was first; a forgets it all the same
        for node in (a, b):
            assert node.known("teacher@example.sch.uk", "parent@gmail.com")
            assert not node.known("teacher@example.sch.uk", "old@gmail.com")
        # One slip from a contact is found through the hashes alone.
        assert b.near("teacher@example.sch.uk", "parnet@gmail.com")
        assert not b.near("teacher@example.sch.uk", "someone@gmail.com")
    finally:
        for store in stores:
            await store.close()


def test_a_gateway_on_sqlite_never_loads_the_postgresql_driver(make_gateway):
    """psycopg and libpq are 23 MB of every process; a single-node install does not pay it."""
    gw = make_gateway({"checks": {"identity": {"action": "quarantine"}}}, process=True)
    assert gw.send(message(from_="head@gmail.com"))[0] == 250   # a hold: the store at work
    maps = Path(f"/proc/{gw.proc.pid}/maps").read_text()
    assert "psycopg" not in maps and "libpq" not in maps
