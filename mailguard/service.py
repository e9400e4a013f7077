"""`mailguard serve`: start the gateway, reload on SIGHUP, drain and stop on SIGTERM.

With `workers = N` a supervisor starts N worker processes that each bind the SMTP port with
SO_REUSEPORT (so both cores work), and itself serves /healthz and /metrics for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from mailguard import config, retention, trace
from mailguard.auth import UserDatabase
from mailguard.config import ConfigError, Settings
from mailguard.pipeline import Pipeline
from mailguard.relay import Upstream, open_upstream
from mailguard.smtp import Handler, protocol_factory
from mailguard.store import db as store_db
from mailguard.store.events import EventLog
from mailguard.store.quarantine import Quarantine

log = structlog.get_logger("mailguard.service")


def load_users(settings: Settings) -> UserDatabase | None:
    path = settings.server.auth_users_file
    return UserDatabase.load(path) if path else None


@dataclass
class Instance:
    """One running gateway process: its stores, upstream, handler and listening socket."""

    config_path: Path
    settings: Settings
    handler: Handler
    upstream: Upstream
    events: EventLog
    server: asyncio.Server
    db: object
    retention: asyncio.Task[None] | None = None

    async def reload(self) -> None:
        try:
            new = config.load(self.config_path)
            users = load_users(new)
        except ConfigError as e:
            log.error("reload_failed_keeping_old_config", error=str(e))
            return
        old = self.settings
        if (new.server.listen, new.server.workers, new.storage.data_dir) != (
                old.server.listen, old.server.workers, old.storage.data_dir):
            log.warning("reload_needs_restart",
                        detail="server.listen, server.workers and storage.data_dir apply on restart")
        if new.upstream != old.upstream:
            retired, self.upstream = self.upstream, open_upstream(new.upstream, new.server.hostname)
            self.handler.upstream = self.handler.pipeline.upstream = self.upstream
            asyncio.get_running_loop().call_later(
                new.upstream.timeout + 5, lambda: asyncio.ensure_future(retired.close()))
        self.settings = new
        self.handler.settings = new
        self.handler.users = users
        self.handler.pipeline.settings = new
        self.handler.refresh_tls()
        log.info("reloaded", config=str(self.config_path))

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let transactions in flight finish (bounded), then close the rest."""
        self.handler.closing = True
        self.server.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.handler.busy or any(
                getattr(c.session, "txn", None) is not None for c in self.handler.connections)):
            await asyncio.sleep(0.05)
        for conn in list(self.handler.connections):
            if conn.transport is not None:
                conn.transport.write(b"421 4.3.2 mailguard is shutting down, try again shortly\r\n")
                conn.transport.close()
        if self.retention:
            self.retention.cancel()
        await self.events.stop()
        await self.upstream.close()


async def start(config_path: Path, settings: Settings, *, reuse_port: bool = False) -> Instance:
    db = await store_db.connect(settings.storage.data_dir)
    events = EventLog(db)
    events.start()
    quarantine = Quarantine(db, settings.storage.data_dir)
    secret = trace.load_secret(settings.server.stamp_secret_file)
    upstream = open_upstream(settings.upstream, settings.server.hostname)
    pipeline = Pipeline(settings, events, quarantine, secret, upstream)
    handler = Handler(settings, pipeline, upstream, events, load_users(settings))
    host, port = settings.server.listen
    try:
        server = await asyncio.get_running_loop().create_server(
            protocol_factory(handler), host, port, reuse_port=reuse_port or None, backlog=1024)
    except OSError:
        await events.stop()
        await db.close()
        raise
    log.info("listening", smtp=f"{host}:{port}", upstream=upstream.describe(), pid=os.getpid())
    keeper = asyncio.create_task(retention.run_hourly(lambda: handler.settings, events, quarantine))
    return Instance(config_path, settings, handler, upstream, events, server, db, keeper)


async def _web(settings: Settings, instance: Instance | None) -> asyncio.Task[None] | None:
    if settings.web.listen is None:
        return None
    import uvicorn

    from mailguard.web.app import create_app

    host, port = settings.web.listen
    server = uvicorn.Server(uvicorn.Config(
        create_app(settings, instance), host=host, port=port, log_config=None,
        access_log=False, lifespan="off"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    return asyncio.create_task(server.serve())


def _signals(stop: asyncio.Event, reload: object) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)  # type: ignore[arg-type]


async def run_single(config_path: Path, settings: Settings, *, worker: bool = False) -> None:
    # Signal handlers go in before the port opens: a SIGHUP that arrives as soon as the
    # port answers must reload, not kill the process (SIGHUP's default action).
    stop = asyncio.Event()
    running: list[Instance] = []
    _signals(stop, lambda: running and asyncio.ensure_future(running[0].reload()))
    instance = await start(config_path, settings, reuse_port=worker)
    running.append(instance)
    web = None if worker else await _web(settings, instance)
    await stop.wait()
    log.info("stopping", in_flight=instance.handler.busy)
    await instance.drain(instance.settings.server.shutdown_timeout)
    if web:
        web.cancel()
    await instance.db.close()  # type: ignore[attr-defined]
    log.info("stopped")


async def supervise(config_path: Path, settings: Settings) -> None:
    """Run N workers; restart one that dies; pass SIGHUP on after checking the new config."""
    from prometheus_client import multiprocess

    argv = [sys.executable, "-m", "mailguard", "serve", "--config", str(config_path), "--worker"]
    workers: dict[int, asyncio.subprocess.Process] = {}
    stop = asyncio.Event()

    async def spawn() -> None:
        proc = await asyncio.create_subprocess_exec(*argv)
        workers[proc.pid] = proc

    def reload() -> None:
        try:
            config.load(config_path)
        except ConfigError as e:
            log.error("reload_failed_keeping_old_config", error=str(e))
            return
        for proc in workers.values():
            proc.send_signal(signal.SIGHUP)

    _signals(stop, reload)
    for _ in range(settings.server.workers):
        await spawn()
    web = await _web(settings, None)
    while not stop.is_set():
        for pid, proc in list(workers.items()):
            if proc.returncode is not None:
                log.error("worker_died_restarting", pid=pid, code=proc.returncode)
                multiprocess.mark_process_dead(pid)
                del workers[pid]
                await spawn()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    for proc in workers.values():
        proc.send_signal(signal.SIGTERM)
    await asyncio.gather(*(p.wait() for p in workers.values()))
    if web:
        web.cancel()


def serve(config_path: Path, *, worker: bool = False) -> int:
    """Entry point for `mailguard serve`: bad config → `file: key: problem`, exit 2."""
    from mailguard import logs

    try:
        settings = config.load(config_path)
        load_users(settings)
        store_db.prepare_data_dir(settings.storage.data_dir)
        trace.load_secret(settings.server.stamp_secret_file)
    except ConfigError as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    logs.configure()
    multi = settings.server.workers > 1 or worker
    if multi:
        metrics_dir = settings.storage.data_dir / "metrics"
        if not worker:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    try:
        if settings.server.workers > 1 and not worker:
            asyncio.run(supervise(config_path, settings))
        else:
            asyncio.run(run_single(config_path, settings, worker=worker))
    except OSError as e:
        print(f"mailguard: cannot start: {e}", file=sys.stderr)
        return 1
    return 0
