"""The primary's other worker processes (started, restarted when one dies, told to reload or
stop with it) and the signals every gateway process answers."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("mailguard.launch")


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
