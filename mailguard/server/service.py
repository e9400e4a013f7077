"""One gateway process: its stores, upstream and SMTP listener; reload on SIGHUP, drain and
stop on SIGTERM. `mailguard.launch` decides whether this runs alone or as a worker."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from mailguard import config, retention
from mailguard.config import ConfigError, Settings
from mailguard.delivery import trace
from mailguard.delivery.relay import Upstream, open_upstream
from mailguard.notices import outbox
from mailguard.pipeline import Pipeline
from mailguard.server.auth import UserDatabase
from mailguard.server.smtp import Handler, protocol_factory
from mailguard.server.workers import Workers, install_signals
from mailguard.store.events import EventLog
from mailguard.store.opening import open_store
from mailguard.store.quarantine import Quarantine
from mailguard.web.serve import web_task

log = structlog.get_logger("mailguard.service")


def load_users(settings: Settings) -> UserDatabase | None:
    path = settings.server.auth_users_file
    return UserDatabase.load(path) if path else None


class Front(Protocol):
    """What an Instance drives: the SMTP `Handler`, or the milter's `MilterFront`."""

    settings: Settings
    pipeline: Pipeline
    upstream: Upstream
    users: UserDatabase | None
    busy: int
    closing: bool
    connections: Any

    def refresh_tls(self) -> None: ...
    def background(self, coro: Any) -> None: ...
    def idle(self) -> bool: ...
    def hang_up(self) -> None: ...


@dataclass
class Instance:
    """One running gateway process: its stores, upstream, handler and listening socket."""

    config_path: Path
    settings: Settings
    handler: Front
    upstream: Upstream
    events: EventLog
    server: Any   # asyncio.Server, or the milter's Listener
    db: object
    retention: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    notices: asyncio.Task[None] | None = None

    async def reload(self) -> None:
        try:  # off the event loop: compiling wordlists must not hold up mail
            new = await asyncio.to_thread(config.load, self.config_path)
            users = load_users(new)
        except ConfigError as e:
            log.error("reload_failed_keeping_old_config", error=str(e))
            return
        old = self.settings
        if (new.server.listen, new.server.workers, new.storage.data_dir, new.milter) != (
                old.server.listen, old.server.workers, old.storage.data_dir, old.milter):
            log.warning("reload_needs_restart", detail="server.listen, server.workers, "
                        "storage.data_dir and [milter] apply on restart")
        if new.upstream != old.upstream:
            retired, self.upstream = self.upstream, open_upstream(new.upstream, new.server.hostname)
            self.handler.upstream = self.handler.pipeline.upstream = self.upstream
            asyncio.get_running_loop().call_later(
                new.upstream.timeout + 5, lambda: asyncio.ensure_future(retired.close()))
        await _attach_history(new, self.db, self.handler.pipeline.secret)   # newly turned on
        self.settings = new
        self.handler.settings = new
        self.handler.users = users
        self.handler.pipeline.settings = new
        self.handler.refresh_tls()
        log.info("reloaded", config=str(self.config_path))
        for problem in new.directory.problems if new.directory else ():
            log.warning("directory_row_skipped", problem=problem)

    def watched(self) -> dict[Path, tuple[float, int]]:
        """The files a reload would read again: wordlists in use and TLS certificates and
        keys, with their modification time and size (a missing file counts as a change)."""
        s = self.settings
        files = [s.server.tls_cert, s.server.tls_key, s.upstream.tls_cert, s.upstream.tls_key]
        language = s.checks.get("language")
        folder = getattr(language, "folder", None)
        if folder is not None and folder.is_dir():
            files.extend(sorted(folder.glob("*.txt")))
            files.extend(sorted((folder / "rules").glob("*.*")))
        out = {}
        for p in files:
            if p is not None:
                try:
                    st = p.stat()
                    out[p] = (st.st_mtime, st.st_size)
                except OSError:
                    out[p] = (0.0, -1)
        return out

    async def watch_files(self, every: float = 2.0) -> None:
        """Reload when IT saves a wordlist or a renewed certificate, as SIGHUP would: new
        lists swap in when compiled, and new connections get the new certificate."""
        seen = self.watched()
        while True:
            await asyncio.sleep(every)
            now = self.watched()
            if now != seen:
                changed = sorted(str(p) for p in now.keys() | seen.keys()
                                 if now.get(p) != seen.get(p))
                log.info("files_changed_reloading", files=changed)
                await self.reload()
                seen = self.watched()

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let transactions in flight finish (bounded), then close the rest."""
        self.handler.closing = True
        self.server.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.handler.idle():
            await asyncio.sleep(0.05)
        self.handler.hang_up()
        for task in (self.retention, self.watcher, self.notices):
            if task:
                task.cancel()
        if self.handler.pipeline.alerts:  # safeguarding alerts still on their way
            await asyncio.wait(self.handler.pipeline.alerts,
                               timeout=max(1.0, deadline - time.monotonic()))
        await self.events.stop()
        history = getattr(self.settings.checks.get("misdirected"), "history", None)
        if history is not None:
            await history.stop()
        await self.upstream.close()


def _attach_rates(settings: Settings, db: Any) -> None:
    """Shared hourly counts use this process's own connection pool to the shared store."""
    from mailguard.store.rates import SharedRates

    rates = getattr(settings.checks.get("limits"), "rates", None)
    if isinstance(rates, SharedRates):
        rates.attach(db)


async def _attach_history(settings: Settings, db: Any, secret: bytes) -> None:
    """Recipient history (the misdirected check) reads this process's store once, then
    writes what it sees in batches; on the shared store it also reads the other nodes'."""
    from mailguard.store.history import history_key

    history = getattr(settings.checks.get("misdirected"), "history", None)
    if history is not None and history.db is None:
        await history.attach(db, history_key(secret))
        history.start(refresh=True)


async def start(config_path: Path, settings: Settings, *, reuse_port: bool = False,
                serving: bool = True, milter: bool = False) -> Instance:
    """The gateway's stores, upstream and SMTP socket (or, for `milter`, the milter socket); with
    `serving` false nothing answers until `server.start_serving()`, so the web listener can
    come first (the milter's socket opens only then)."""
    db = await open_store(settings.storage)
    events = EventLog(db, node=settings.server.node)
    _attach_rates(settings, db)
    secret = trace.load_secret(settings.server.stamp_secret_file)
    try:
        await _attach_history(settings, db, secret)
    except BaseException:
        await db.close()
        raise
    events.start()
    quarantine = Quarantine(db, settings.storage.data_dir, settings.storage.quarantine_key,
                            settings.storage.quarantine_old_keys, node=settings.server.node)
    upstream = open_upstream(settings.upstream, settings.server.hostname)
    pipeline = Pipeline(settings, events, quarantine, secret, upstream, milter=milter)
    handler: Front
    server: Any
    if milter:
        from mailguard.server.milter import MilterFront

        handler = MilterFront(settings, pipeline, upstream)
        server = handler.listener
        log.info("milter", listen=settings.milter.listen, upstream=upstream.describe())
    else:
        handler = Handler(settings, pipeline, upstream, events, load_users(settings))
        host, port = settings.server.listen
        try:
            server = await asyncio.get_running_loop().create_server(
                protocol_factory(handler), host, port, reuse_port=reuse_port or None,
                backlog=1024, start_serving=serving)
        except OSError:
            await events.stop()
            await db.close()
            raise
        log.info("listening", smtp=f"{host}:{port}", upstream=upstream.describe())
    keeper = asyncio.create_task(retention.run_hourly(lambda: handler.settings, events, quarantine))
    teller = asyncio.create_task(outbox.run(lambda: handler.settings, quarantine))
    return Instance(config_path, settings, handler, upstream, events, server, db, keeper,
                    notices=teller)


async def run_single(config_path: Path, settings: Settings, *, worker: bool = False,
                     extra_workers: int = 0, milter: bool = False) -> None:
    """One gateway process; the primary (not `worker`) also serves the web listener and keeps
    `extra_workers` more processes running beside it."""
    # Signal handlers go in before the port opens: a SIGHUP that arrives as soon as the
    # port answers must reload, not kill the process (SIGHUP's default action).
    stop = asyncio.Event()
    running: list[Instance] = []
    others = Workers(config_path, extra_workers) if extra_workers else None

    def reload() -> None:
        if running:
            running[0].handler.background(running[0].reload())
        if others:
            others.signal(signal.SIGHUP)

    install_signals(stop, reload)
    instance = await start(config_path, settings, reuse_port=worker or bool(others),
                           serving=False, milter=milter)
    running.append(instance)
    instance.watcher = asyncio.create_task(instance.watch_files())
    # /healthz and /metrics answer before port 25 does: a process manager or load balancer
    # that probes as soon as SMTP answers never finds the web listener missing.
    web = None if worker else await web_task(settings, instance)
    try:
        await instance.server.start_serving()
    except OSError:   # the milter socket could not be made: close the stores, then say why
        await instance.drain(0)
        if web:
            await web.stop()
        await instance.db.close()  # type: ignore[attr-defined]
        raise
    keeper = asyncio.create_task(others.run()) if others else None
    await stop.wait()
    log.info("stopping", in_flight=instance.handler.busy)
    if others and keeper:
        await others.stop()
        keeper.cancel()
    await instance.drain(instance.settings.server.shutdown_timeout)
    if web:
        await web.stop()
    await instance.db.close()  # type: ignore[attr-defined]
    log.info("stopped")
