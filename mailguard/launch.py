"""`mailguard serve`: check the config, then run the gateway. With `workers = N` the first
process is itself a worker (SMTP and the web listener) and keeps N-1 more running; all bind
the SMTP port with SO_REUSEPORT so every core works, and /metrics adds them all up.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from mailguard import config
from mailguard.config import ConfigError, Settings
from mailguard.delivery import trace
from mailguard.store.db import prepare_data_dir

log = structlog.get_logger("mailguard.launch")


async def web_task(settings: Settings, instance: Any | None) -> asyncio.Task[None] | None:
    if settings.web.listen is None:
        return None
    import uvicorn

    from mailguard.web.app import create_app

    host, port = settings.web.listen
    # Behind the trust's HTTPS proxy, the reviewer's own address (for the audit log and the
    # sign-in throttle) comes from X-Forwarded-For, believed only from the listed proxies.
    proxies = settings.web.trusted_proxies
    server = uvicorn.Server(uvicorn.Config(
        create_app(settings, instance), host=host, port=port, log_config=None,
        access_log=False, lifespan="off", proxy_headers=bool(proxies),
        forwarded_allow_ips=",".join(proxies) or None))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:   # listening before SMTP is: a probe of /healthz never misses
        if task.done():
            task.result()
            raise OSError(f"the review desk could not listen on {host}:{port}")
        await asyncio.sleep(0.005)
    return task


def install_signals(stop: asyncio.Event, reload: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)


class Workers:
    """The other N-1 worker processes of the primary: started, restarted when one dies,
    told to reload or stop when the primary is."""

    def __init__(self, config_path: Path, count: int) -> None:
        self.argv = [sys.executable, "-m", "mailguard", "serve", "--config", str(config_path),
                     "--worker"]
        self.count = count
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = False

    async def run(self) -> None:
        from prometheus_client import multiprocess

        while not self.stopping:
            for pid, proc in list(self.procs.items()):
                if proc.returncode is not None:
                    log.error("worker_died_restarting", pid=pid, code=proc.returncode)
                    multiprocess.mark_process_dead(pid)
                    del self.procs[pid]
            while len(self.procs) < self.count and not self.stopping:
                proc = await asyncio.create_subprocess_exec(*self.argv)
                self.procs[proc.pid] = proc
            await asyncio.sleep(0.5)

    def signal(self, sig: int) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(sig)

    async def stop(self) -> None:
        self.stopping = True
        self.signal(signal.SIGTERM)
        await asyncio.gather(*(p.wait() for p in self.procs.values()))


def serve(config_path: Path, *, worker: bool = False) -> int:
    """Entry point for `mailguard serve`: bad config → `file: key: problem`, exit 2."""
    from mailguard import logs
    from mailguard.auth import UserDatabase

    try:
        settings = config.load(config_path)
        if settings.server.auth_users_file:
            UserDatabase.load(settings.server.auth_users_file)
        prepare_data_dir(settings.storage.data_dir)
        trace.load_secret(settings.server.stamp_secret_file)
    except ConfigError as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    logs.configure()
    for problem in settings.directory.problems if settings.directory and not worker else ():
        log.warning("directory_row_skipped", problem=problem)
    if not worker:
        from mailguard import certificates

        for warning in certificates.warnings(settings):
            log.warning("certificate_expiring", detail=warning)
    multi = settings.server.workers > 1 or worker
    if multi:
        metrics_dir = settings.storage.data_dir / "metrics"
        if not worker:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    try:
        from mailguard.service import run_single

        extra = 0 if worker else settings.server.workers - 1
        asyncio.run(run_single(config_path, settings, worker=worker, extra_workers=extra))
    except OSError as e:
        print(f"mailguard: cannot start: {e}", file=sys.stderr)
        return 1
    return 0
