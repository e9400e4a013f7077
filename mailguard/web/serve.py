"""The review desk's listener (uvicorn) inside a gateway process, up before SMTP is, and
stopped the way uvicorn stops, so its socket is closed before the process (or a restart in
the same process) goes on."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from mailguard.config import Settings


@dataclass
class Desk:
    server: Any   # uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and let requests in flight finish (bounded), then close."""
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except (TimeoutError, asyncio.CancelledError, SystemExit):
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def web_task(settings: Settings, instance: Any | None) -> Desk | None:
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
            with contextlib.suppress(SystemExit):   # uvicorn exits when it cannot bind
                task.result()
            raise OSError(f"the review desk could not listen on {host}:{port}")
        await asyncio.sleep(0.005)
    return Desk(server, task)
