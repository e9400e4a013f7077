"""Process life: SIGHUP reloads (a broken config keeps the old one), SIGTERM drains, workers."""

from __future__ import annotations

import json
import signal
import smtplib
import threading
import time
import urllib.request

import pytest
from conftest import message, toml_dump

# Process life is this module's subject: every gateway here is `mailguard serve` itself.


@pytest.fixture
def gateway(make_gateway):
    return make_gateway(process=True)


def test_sighup_with_broken_config_keeps_running_and_says_why(gateway, sink):
    gateway.write_config("[server\nthis is not toml")
    gateway.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert gateway.proc.poll() is None
    assert gateway.send(message())[0] == 250
    assert "reload_failed_keeping_old_config" in gateway.log()
    assert "not valid TOML" in gateway.log()


def test_sighup_applies_a_new_config(gateway, sink):
    assert gateway.send(message(from_="head@gmail.com"))[0] == 550
    gateway.config["checks"]["identity"]["action"] = "quarantine"
    gateway.write_config()
    gateway.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while '"reloaded"' not in gateway.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    code, text = gateway.send(message(from_="head@gmail.com"))
    assert code == 250 and b"Held for review" in text


def test_sigterm_finishes_the_message_in_flight_then_exits(gateway, sink):
    sink.handler.delay = 1.5
    result: dict = {}

    def send() -> None:
        result["reply"] = gateway.send(message())

    t = threading.Thread(target=send)
    t.start()
    deadline = time.monotonic() + 5
    while not any(c.startswith("RCPT") for c in sink.handler.commands):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # DATA is now with the (slow) upstream
    gateway.signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(OSError):  # no longer accepting
        smtplib.SMTP("127.0.0.1", gateway.port, timeout=2)
    t.join(10)
    assert result["reply"][0] == 250
    assert len(sink.messages) == 1
    assert gateway.proc.wait(10) == 0
    assert '"stopped"' in gateway.log()


def test_events_written_before_exit_are_kept(gateway, sink):
    for _ in range(3):
        gateway.send(message())
    assert gateway.stop() == 0
    assert len(gateway.events(at_least=3)) == 3


def test_health_and_metrics(gateway, sink):
    gateway.send(message())
    gateway.send(message(from_="x@gmail.com"))
    base = f"http://127.0.0.1:{gateway.web_port}"
    health = json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=5).read())
    assert health["status"] == "ok" and health["upstream"].startswith("smtp://127.0.0.1:")
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    assert 'mailguard_messages_total{verdict="delivered"} 1.0' in metrics
    assert 'mailguard_messages_total{verdict="rejected"} 1.0' in metrics
    assert 'mailguard_findings_total{rule="identity.foreign_from"} 1.0' in metrics


def test_workers_share_the_port_and_report_metrics_together(make_gateway, sink):
    gw = make_gateway({"server": {"workers": 2}}, process=True)
    deadline = time.monotonic() + 10
    while gw.log().count('"listening"') < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = {json.loads(line)["pid"] for line in gw.log().splitlines() if '"listening"' in line}
    assert len(pids) == 2
    for _ in range(20):
        assert gw.send(message())[0] == 250
    metrics = urllib.request.urlopen(
        f"http://127.0.0.1:{gw.web_port}/metrics", timeout=5).read().decode()
    assert 'mailguard_messages_total{verdict="delivered"} 20.0' in metrics
    served = {e["id"] for e in gw.events()}
    assert len(served) == 20
    assert gw.stop() == 0


def test_serve_refuses_a_port_in_use_with_a_message(make_gateway, sink, tmp_path):
    gw = make_gateway(process=True)
    other = make_gateway(start=False, process=True)
    other.config["server"]["listen"] = gw.config["server"]["listen"]
    other.config["web"]["listen"] = ""
    other.config_path = tmp_path / "second.toml"
    other.config_path.write_text(toml_dump(other.config))
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "mailguard", "serve", "--config",
                          str(other.config_path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "cannot start" in out.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_health_and_metrics_answer_as_soon_as_smtp_does(make_gateway, workers):
    """A process manager that probes /healthz the moment port 25 answers finds it up."""
    gw = make_gateway({"server": {"workers": workers}}, start=False, process=True)
    gw.start()   # returns as soon as the SMTP port accepts a connection
    base = f"http://127.0.0.1:{gw.web_port}"
    health = json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=5).read())
    assert health["status"] == "ok"
    assert urllib.request.urlopen(f"{base}/metrics", timeout=5).status == 200
    assert gw.send(message())[0] == 250
