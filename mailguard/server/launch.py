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
from pathlib import Path

import structlog

from mailguard import config
from mailguard.config import ConfigError, Settings
from mailguard.delivery import trace
from mailguard.store.backend import errors as store_errors
from mailguard.store.db import prepare_data_dir
from mailguard.store.db import problem as store_problem

log = structlog.get_logger("mailguard.launch")


def announce(settings: Settings) -> None:
    """What IT should hear of at start: directory rows left out, certificates expiring."""
    from mailguard.server import certificates

    for problem in settings.directory.problems if settings.directory else ():
        log.warning("directory_row_skipped", problem=problem)
    for warning in certificates.warnings(settings):
        log.warning("certificate_expiring", detail=warning)


def desk(config_path: Path) -> int:
    """Entry point for `mailguard desk`: the review desk alone, on the store the config
    names (the shared one, for a desk that serves every node; no SMTP listener)."""
    from mailguard import logs
    from mailguard.web.serve import web_task

    try:
        settings = config.load(config_path)
        prepare_data_dir(settings.storage.data_dir)
    except ConfigError as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    if settings.web.listen is None:
        print(f"mailguard: {config_path}: web.listen: the desk is turned off (\"\"): give it an "
              "address such as 127.0.0.1:8025", file=sys.stderr)
        return 2
    logs.configure()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        web = await web_task(settings, None)
        assert web is not None
        log.info("desk_listening", listen=":".join(map(str, settings.web.listen or ())))
        await stop.wait()
        await web.stop()
        store = web.server.config.app.state.desk.db
        if store is not None:
            await store.close()

    try:
        asyncio.run(run())
    except OSError as e:
        print(f"mailguard: cannot start the desk: {e}", file=sys.stderr)
        return 1
    return 0


def serve(config_path: Path, *, worker: bool = False, milter: bool = False) -> int:
    """Entry point for `mailguard serve` (and `mailguard milter`, one process): bad config →
    `file: key: problem`, exit 2."""
    from mailguard import logs
    from mailguard.server.auth import UserDatabase

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
    if not worker:
        announce(settings)
    multi = (settings.server.workers > 1 or worker) and not milter
    if multi:
        metrics_dir = settings.storage.data_dir / "metrics"
        if not worker:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    try:
        from mailguard.server.service import run_single

        extra = 0 if worker or milter else settings.server.workers - 1
        asyncio.run(run_single(config_path, settings, worker=worker, extra_workers=extra,
                               milter=milter))
    except ConfigError as e:   # found only once the store is open (a cluster's key)
        print(f"mailguard: {config_path}: {e}", file=sys.stderr)
        return 2
    except (*store_errors(), OSError) as e:
        words = store_problem(e, settings.storage.data_dir) if not isinstance(e, OSError) else e
        print(f"mailguard: cannot start: {words}", file=sys.stderr)
        return 1
    return 0
