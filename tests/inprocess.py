"""The gateway run inside the test process, as aiosmtpd's own tests run its Controller: the
real config load, stores, pipeline, SMTP server and review desk, on an event loop in a
thread. Clients still talk SMTP and HTTP to it over loopback; only the process is saved.

Its log is the gateway's own JSON log (mailguard.logs), written to the gateway's log file
as the process writes its stdout, so tests that read `gw.log()` (no addresses or words where
they must not be) read the same lines. What needs a process of its own (signals, exit codes,
worker processes, /metrics) uses conftest.Gateway: `make_gateway(..., process=True)`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from conftest import Gateway

from mailguard import config, logs
from mailguard.server import launch

_RUNNING: list[LocalGateway] = []


class _Tee:
    """structlog's output while gateways run here: into each running gateway's log file."""

    def write(self, text: str) -> int:
        for gw in list(_RUNNING):
            with gw.log_path.open("a", encoding="utf-8") as f:
                f.write(text)
        return len(text)

    def flush(self) -> None:
        pass


_CONFIGURED: list[bool] = []


def _log_like_the_process() -> None:
    if not _CONFIGURED:
        logs.configure()
        import structlog

        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=_Tee()))
        _CONFIGURED.append(True)


class _Serving:
    def __init__(self, gw: LocalGateway) -> None:
        self.gw = gw

    def poll(self) -> int | None:
        alive = self.gw.thread is not None and self.gw.thread.is_alive()
        return None if alive and self.gw.loop is not None and self.gw.loop.is_running() else 1


class LocalGateway(Gateway):
    """conftest.Gateway's interface, served from this process."""

    def __init__(self, folder: Path, cfg: dict[str, Any]) -> None:
        super().__init__(folder, cfg)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.instance: Any = None
        self.web: Any = None   # mailguard.web.serve.Desk
    def _run(self, coro: Any, timeout: float = 60) -> Any:
        """Run a coroutine on the gateway's loop and wait for it; a loop that died (an
        exception that escaped it) is said at once, not after the timeout."""
        assert self.loop is not None and self.thread is not None
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return future.result(0.2)
            except concurrent.futures.TimeoutError:
                if not self.thread.is_alive():
                    raise RuntimeError("the gateway's event loop stopped") from None
                if time.monotonic() > deadline:
                    raise

    def start(self) -> None:
        from mailguard.server import service

        _log_like_the_process()
        _RUNNING.append(self)
        settings = config.load(self.config_path)
        launch.announce(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway",
                                       daemon=True)
        self.thread.start()

        async def up() -> None:
            self.instance = await service.start(self.config_path, settings, serving=False)
            self.instance.watcher = asyncio.create_task(self.instance.watch_files())
            await self.instance.server.start_serving()

        try:
            self._run(up())
        except BaseException:
            self.stop()
            raise

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """`mailguard COMMAND --config FILE …` run by the CLI's own entry point in this
        process: the same parser, commands and output, without starting an interpreter.
        From inside an event loop (an async test) the command runs as its own process, as
        its asyncio.run could not run here. The test process's stdin, environment and
        SIGPIPE handling are put back afterwards."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return super().cli(*args, input=input)
        from mailguard import cli

        argv = [*args[:1], "--config", str(self.config_path), *args[1:]]
        # Binary underneath, as a process's stdout is: `quarantine show --raw` writes bytes.
        out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
        out = io.TextIOWrapper(out_bytes, encoding="utf-8", write_through=True)
        err = io.TextIOWrapper(err_bytes, encoding="utf-8", write_through=True)
        stdin, environ = sys.stdin, dict(os.environ)
        pipe = signal.getsignal(signal.SIGPIPE)
        sys.stdin = io.StringIO(input or "")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = cli.main(argv)
                except SystemExit as e:   # argparse's usage errors
                    code = e.code if isinstance(e.code, int) else int(e.code is not None)
                except Exception:   # what the process would print and exit 1 with
                    traceback.print_exc()
                    code = 1
        finally:
            sys.stdin = stdin
            os.environ.clear()
            os.environ.update(environ)
            signal.signal(signal.SIGPIPE, pipe)
        out.flush()
        err.flush()
        def text(data: bytes) -> str:   # as subprocess's text mode reads it: universal newlines
            return data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")

        return subprocess.CompletedProcess(["mailguard", *argv], code,
                                           text(out_bytes.getvalue()), text(err_bytes.getvalue()))

    @property
    def web_port(self) -> int:
        """The review desk's port. The desk is started when a test first asks for it: most
        tests never open it, and uvicorn takes a fifth of a second to stop."""
        if self.web is None and self.instance is not None:
            from mailguard.web.serve import web_task

            async def desk() -> Any:
                return await web_task(self.instance.settings, self.instance)

            self.web = self._run(desk())
        return super().web_port

    def events(self, at_least: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The event log: here the gateway's own batch is written out first, so what every
        answered transaction recorded is read at once (the process is read by waiting)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.instance is not None:
                self._run(self.instance.events.flush())
            now = self.read_events()
            if len(now) >= at_least or time.monotonic() > deadline:
                return now
            time.sleep(0.05)

    @property
    def proc(self) -> _Serving | None:
        """Stands in for the process handle: `poll()` is None while the gateway serves."""
        return _Serving(self) if self.loop is not None else None

    @proc.setter
    def proc(self, _: object) -> None:   # Gateway.__init__ clears it; nothing to hold here
        pass

    def signal(self, sig: int) -> None:
        if sig == signal.SIGHUP and self.instance is not None:
            self._run(self.instance.reload())
        elif sig in (signal.SIGTERM, signal.SIGINT):
            self.stop()
        else:
            raise NotImplementedError(f"signal {sig} needs a gateway process (process=True)")

    def stop(self, timeout: float = 20) -> int:
        if self.loop is None:
            if self in _RUNNING:
                _RUNNING.remove(self)
            return 0
        instance, web = self.instance, self.web

        async def down() -> None:
            if instance is not None:
                await instance.drain(min(timeout, instance.settings.server.shutdown_timeout))
            if web is not None:
                await web.stop()
            if instance is not None:
                await instance.db.close()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self._run(down(), timeout + 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            assert self.thread is not None
            self.thread.join(10)
            self.loop.close()
            self.loop, self.thread, self.instance, self.web = None, None, None, None
            _RUNNING.remove(self)
        return 0
