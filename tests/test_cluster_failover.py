"""Two gateway nodes behind HAProxy (Debian's package, the PROXY protocol, health checks on
/healthz), one PostgreSQL store, the school's Postfix sending: one node is killed with
SIGKILL mid-run, and still every message arrives or is held, and the one desk queue has
every held message (issue 18).
"""

from __future__ import annotations

import json
import re
import signal
import smtplib
import time
from pathlib import Path

import pytest
from conftest import Gateway, base_config, deep_update, message
from haproxy import HAPROXY, Haproxy
from postfix import Postfix

from mailguard.store.sealing import key_file

pytestmark = pytest.mark.own_store   # each test chooses its stores itself

TOTAL, HELD_EVERY = 2000, 10   # every tenth message is one the identity check holds
CONCURRENCY = 10               # Postfix's connections to the balancer at once


@pytest.mark.skipif(not Path(HAPROXY).exists(),
                    reason="HAProxy is not installed (scripts/system-deps.sh test installs it)")
def test_a_node_killed_mid_run_behind_haproxy_loses_nothing(postgres, tmp_path, sink):
    url = postgres.fresh_database()
    secret = tmp_path / "pg.password"
    secret.write_text(postgres.password + "\n")
    secret.chmod(0o600)
    key = tmp_path / "quarantine.key"
    key_file(key)
    nodes: dict[str, Gateway] = {}
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        nodes[name] = Gateway(folder, deep_update(
            base_config(folder / "var", f"smtp://127.0.0.1:{sink.port}"), {
                "server": {"node": name, "proxy_protocol": True, "proxy_from": ["127.0.0.1/32"]},
                "checks": {"identity": {"action": "quarantine"}},
                "storage": {"url": url, "password_file": str(secret),
                            "quarantine_key_file": str(key)}}))
    balancer = postfix = None
    try:
        for gw in nodes.values():
            gw.start()
        balancer = Haproxy({n: (gw.port, gw.web_port) for n, gw in nodes.items()})
        postfix = Postfix(f"[127.0.0.1]:{balancer.port}", processes=CONCURRENCY)
        postfix.start()
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=60) as school:
            for n in range(TOTAL):
                held = n % HELD_EVERY == 0
                school.sendmail("teacher@example.sch.uk", ["parent@gmail.com"], message(
                    from_="head@gmail.com" if held else "teacher@example.sch.uk",
                    subject=f"Number {n}"))
                if n == TOTAL // 3:   # a third in: node a's machine dies
                    while len(sink.messages) < TOTAL // 10:
                        time.sleep(0.05)
                    nodes["a"].signal(signal.SIGKILL)
                    nodes["a"].proc.wait(10)
        deadline = time.monotonic() + 240
        while postfix.queue_size() and time.monotonic() < deadline:
            postfix.flush()
            time.sleep(1)
        assert postfix.queue_size() == 0, postfix.log()[-3000:]
        numbers = [int(re.search(rb"Subject: Number (\d+)", m.data).group(1))
                   for m in sink.messages if b"Subject: Number " in m.data]
        plain = [n for n in range(TOTAL) if n % HELD_EVERY]
        assert sorted(set(numbers)) == plain               # every one delivered
        twice = len(numbers) - len(set(numbers))
        assert twice <= CONCURRENCY                        # only what was in flight at the kill
        listed = nodes["b"].cli("quarantine", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        held = [json.loads(line) for line in listed.stdout.splitlines()]
        assert TOTAL // HELD_EVERY <= len(held) <= TOTAL // HELD_EVERY + CONCURRENCY
        assert len({h["id"] for h in held}) == len(held)
        events = [json.loads(line) for line in
                  nodes["b"].cli("events", "--json", "--since", "1h").stdout.splitlines()]
        assert {e["node"] for e in events} == {"a", "b"}   # both served, until a died
    finally:
        if postfix is not None:
            postfix.stop()
        if balancer is not None:
            balancer.stop()
        for gw in nodes.values():
            gw.stop()
