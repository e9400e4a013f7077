"""A private Postfix instance in a temporary folder: the school's mail server in tests and bench.

It listens on its own loopback port and relays everything to `relayhost`, as a school's
Postfix or Exchange would use mailguard as its smarthost.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# The instance's own master.cf: one SMTP listener on the port the test chose, and the
# internal services a relay needs. Nothing is copied from the machine's /etc/postfix, whose
# master.cf may have other inet listeners (a content filter on 10026, submission on 587).
# No chroot: the queue lives in a temporary folder without the chroot's copied files.
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
proxywrite unix - - n -    1 proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available() -> bool:
    return all(shutil.which(tool) for tool in ("postfix", "postqueue"))


_GIVEN: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, and never one handed out before in this run: a stopped
    sink's port must not become the next gateway's own, or the gateway relays to itself
    (test_upstream_down_gives_451_and_keeps_nothing failed so once in CI)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Postfix:
    def __init__(self, relayhost: str, *, extra: dict[str, str] | None = None,
                 processes: int = 100) -> None:
        # Postfix's daemons run as the postfix user, so the folder and its parents must be
        # traversable by it: pytest's own temporary folders (0700) are not.
        folder = Path(tempfile.mkdtemp(prefix="mailguard-postfix-"))
        self.folder = folder
        self.port = free_port()
        self.config = folder / "etc"
        self.config.mkdir(parents=True, exist_ok=True)
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(folder / "queue"),
            "data_directory": str(folder / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "mx.example.sch.uk",
            "mydomain": "example.sch.uk",
            "myorigin": "$mydomain",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "relayhost": relayhost,
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "maillog_file": str(folder / "maillog"),
            "maillog_file_prefixes": str(folder),
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "default_process_limit": str(processes),
            "smtp_destination_concurrency_limit": str(processes),
            "default_destination_concurrency_limit": str(processes),
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "5s",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtputf8_enable": "yes",
            "message_size_limit": str(50 * 1024 * 1024),
        }
        settings.update(extra or {})
        (self.config / "main.cf").write_text(
            "".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.config / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        for sub in ("queue", "data"):
            (folder / sub).mkdir(exist_ok=True)
        shutil.chown(folder / "data", "postfix")
        folder.chmod(0o755)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["postfix", "-c", str(self.config), *args], capture_output=True,
                              text=True, check=check, timeout=60)

    def start(self) -> None:
        """Start the instance; one that does not come up is stopped again, not left behind."""
        self.run("check", check=False)
        try:
            self.run("start")
            wait_for_port(self.port)
        except (subprocess.SubprocessError, TimeoutError) as e:
            detail = self.log()[-2000:]
            self.stop()
            raise RuntimeError(f"the private Postfix did not start: {e}\n{detail}") from e

    def flush(self) -> None:
        subprocess.run(["postqueue", "-c", str(self.config), "-f"], check=False, timeout=30)

    def queue_size(self) -> int:
        out = subprocess.run(["postqueue", "-c", str(self.config), "-j"], capture_output=True,
                             text=True, timeout=30).stdout
        return len([line for line in out.splitlines() if line.strip()])

    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        self.run("stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)
