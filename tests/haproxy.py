"""HAProxy (Debian's package) in front of gateway nodes, for the tests and the bench: SMTP
in TCP mode with the PROXY header, each node checked on its /healthz, a refused connection
tried on another node. Started in the foreground on a free loopback port; stop() stops it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from postfix import free_port, wait_for_port

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class Haproxy:
    """HAProxy in the foreground: SMTP in TCP mode to the nodes with the PROXY header, each
    node checked on its /healthz, a refused connection tried on the other node."""

    def __init__(self, nodes: dict[str, tuple[int, int]]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mailguard-haproxy-"))
        self.port = free_port()
        servers = "".join(
            f"  server {name} 127.0.0.1:{smtp} send-proxy check port {web} inter 300 "
            f"fall 2 rise 2\n" for name, (smtp, web) in nodes.items())
        (self.folder / "haproxy.cfg").write_text(
            "global\n  maxconn 500\n"
            "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n"
            "  timeout server 60s\n  retries 3\n  option redispatch\n"
            f"frontend smtp\n  bind 127.0.0.1:{self.port}\n  default_backend nodes\n"
            "backend nodes\n  balance roundrobin\n  option httpchk GET /healthz\n" + servers)
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.folder / "haproxy.cfg")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        shutil.rmtree(self.folder, ignore_errors=True)
