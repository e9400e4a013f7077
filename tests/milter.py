"""`mailguard milter` as its own process, inside a private real Postfix: the school's own mail
server with mailguard in its `smtpd_milters`, relaying to the test's sink.

Mail is sent to Postfix, as a teacher's mail client would; what Postfix answers, what reaches
the sink and what mailguard recorded are what the tests look at.
"""

from __future__ import annotations

import smtplib
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import Gateway
from postfix import Postfix, free_port, wait_for_port


def milter_postfix(relayhost: str, milter: int | Path, **extra: str) -> Postfix:
    """Postfix as a school would set it up for mailguard (docs/milter.md): mailguard's
    verdict at end of message, and a tempfail (never a pass) when mailguard does not answer.
    `milter` is mailguard's port on loopback, or its UNIX socket."""
    where = f"unix:{milter}" if isinstance(milter, Path) else f"inet:127.0.0.1:{milter}"
    return Postfix(relayhost, extra={
        "smtpd_milters": where,
        "non_smtpd_milters": "",
        "milter_protocol": "6",
        "milter_default_action": "tempfail",
        "milter_connect_timeout": "5s",
        **extra})


def wait_for_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Until mailguard's UNIX socket answers (made, and given its group and mode)."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.stat().st_mode & 0o070:
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(path))
                    return
                except OSError:
                    pass
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {path}")


class MilterGateway(Gateway):
    """mailguard as a milter process, with the Postfix that calls it."""

    def __init__(self, folder: Path, config: dict[str, Any], sink_port: int,
                 socket: Path | None = None, postfix: bool = True) -> None:
        self.milter_port = free_port()
        self.socket = socket
        self.with_postfix = postfix   # False: the test is the MTA (tests/milterclient.py)
        self.postfix_running = False
        listen = f"unix:{socket}" if socket else f"inet:127.0.0.1:{self.milter_port}"
        config.setdefault("milter", {})["listen"] = listen
        super().__init__(folder, config)
        self.postfix = milter_postfix(f"[127.0.0.1]:{sink_port}", socket or self.milter_port)

    command = "milter"

    def start(self) -> None:
        super().start()
        if self.with_postfix and not self.postfix_running:
            self.postfix.start()
            self.postfix_running = True

    def wait_until_serving(self) -> None:
        if self.socket is None:
            wait_for_port(self.milter_port)
        else:
            assert self.proc is not None
            wait_for_socket(self.socket, self.proc)

    def close(self) -> None:
        """Stop mailguard and Postfix both."""
        self.stop()
        if self.postfix_running:
            self.postfix.stop()
            self.postfix_running = False

    def client(self) -> smtplib.SMTP:
        c = smtplib.SMTP("127.0.0.1", self.postfix.port, timeout=60)
        c.ehlo("client.example.sch.uk")
        return c

    def wait_in_log(self, text: str, timeout: float = 20) -> str:
        """Postfix's log, once it says `text`."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.postfix.log()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return log
