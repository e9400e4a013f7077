"""A real Postfix, configured as a school's mail server with mailguard as its relayhost."""

from __future__ import annotations

import os
import re
import smtplib
import time

import pytest
from conftest import message
from postfix import Postfix, available

# Skipped only on a developer machine without Postfix; CI installs it (make test), never skips.
pytestmark = pytest.mark.skipif(not available() and not os.environ.get("CI"),
                                reason="postfix is not installed (make test installs it)")


@pytest.fixture
def postfix(gateway):
    pf = Postfix(f"[127.0.0.1]:{gateway.port}")
    pf.start()
    yield pf
    pf.stop()


def submit(pf: Postfix, raw: bytes, recipients: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as c:
        c.sendmail("teacher@example.sch.uk", recipients, raw)


def test_postfix_delivers_through_mailguard(postfix, gateway, sink):
    submit(postfix, message(), ["parent@gmail.com", "other@yahoo.com"])
    [got] = sink.wait_for(1)
    assert sorted(got.recipients) == ["other@yahoo.com", "parent@gmail.com"]
    assert re.search(rb"by mailguard\.test \(mailguard(?: node [\w.-]+)?\)", got.data)
    assert b"by mx.example.sch.uk (Postfix)" in got.data  # Postfix's own trace is kept below ours
    assert got.data.index(b"X-Mailguard:") < got.data.index(b"by mx.example.sch.uk")


def test_upstream_down_postfix_retries_and_delivers_once_it_is_back(postfix, gateway, sink):
    sink.stop()
    submit(postfix, message(subject="Parents evening"), ["parent@gmail.com"])
    deadline = time.monotonic() + 20
    while "status=deferred" not in postfix.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "451 4.4.1 upstream mail server unavailable" in postfix.log()
    assert postfix.queue_size() == 1
    sink.start()
    postfix.flush()
    [got] = sink.wait_for(1, timeout=30)
    assert b"Subject: Parents evening" in got.data
    time.sleep(1)
    assert len(sink.messages) == 1 and postfix.queue_size() == 0


def test_recipient_refused_upstream_bounces_in_postfix_others_delivered(postfix, gateway, sink):
    sink.handler.refuse["gone@gmail.com"] = "550 5.1.1 <gone@gmail.com>: no such user"
    submit(postfix, message(), ["gone@gmail.com", "parent@gmail.com"])
    delivered, bounce = sorted(sink.wait_for(2), key=lambda m: m.sender == "<>")
    assert delivered.recipients == ["parent@gmail.com"]
    # Postfix's bounce to the teacher goes out through mailguard too, with the null sender.
    assert (bounce.sender, bounce.recipients) == ("<>", ["teacher@example.sch.uk"])
    assert b"no such user" in bounce.data
    assert "to=<gone@gmail.com>" in postfix.log()


def test_policy_rejection_reaches_postfix_as_a_bounce_with_the_reason(postfix, gateway, sink):
    submit(postfix, message(from_="impostor@gmail.com"), ["parent@gmail.com"])
    deadline = time.monotonic() + 20
    while "status=bounced" not in postfix.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "550-5.7.1 Not sent: the From address is not in Test Academy Trust's" in postfix.log()
    # The only thing that reached the outside is Postfix's bounce telling the teacher why.
    [bounce] = sink.wait_for(1)
    assert (bounce.sender, bounce.recipients) == ("<>", ["teacher@example.sch.uk"])
    assert b"What to do: send school mail from your school account" in bounce.data


def _masters(pf: Postfix) -> list[str]:
    out = os.popen("pgrep -a -f 'postfix/master'").read()
    return [line for line in out.splitlines() if str(pf.config) in line]


def test_the_private_instance_listens_only_where_the_test_chose():
    """Built from its own master.cf, never the machine's: the only inet listener is its own
    port, whatever /etc/postfix/master.cf holds (a relay on 10026, submission on 587)."""
    pf = Postfix("[127.0.0.1]:9")
    try:
        listed = os.popen(f"postconf -c {pf.config} -M").read().splitlines()
        inet = [line for line in listed if " inet " in f" {line} "]
        assert inet and [line.split()[0] for line in inet] == [f"127.0.0.1:{pf.port}"]
        assert all(line.split()[4] == "n" for line in listed if line.strip())   # no chroot
        # Nothing from the machine's master.cf (Debian's has uucp, maildrop, local …).
        assert {line.split()[0] for line in listed if " unix" in line} <= {
            "pickup", "cleanup", "qmgr", "tlsmgr", "rewrite", "bounce", "defer", "trace",
            "verify", "flush", "proxymap", "proxywrite", "smtp", "relay", "showq", "error",
            "retry", "discard", "anvil", "scache", "postlog"}
    finally:
        pf.stop()


def test_an_instance_that_cannot_start_is_stopped_not_left_running():
    import socket

    pf = Postfix("[127.0.0.1]:9")
    blocker = socket.socket()   # bound, not listening: the master cannot bind its port
    blocker.bind(("127.0.0.1", pf.port))
    try:
        with pytest.raises(RuntimeError, match="did not start"):
            pf.start()
        assert not _masters(pf)
        assert not pf.folder.exists()
    finally:
        blocker.close()
        pf.stop()


def test_on_premises_postfix_relays_as_a_named_network_source_and_nothing_else_does(
        make_gateway, sink):
    """The school's own server is trusted by its own address, named as a `network` source;
    the rest of loopback (127.0.0.1 here) is then a stranger."""
    gw = make_gateway({"sources": {"mx": {"type": "network", "networks": ["127.0.0.7/32"]}}},
                      start=False)
    del gw.config["server"]["trusted_networks"]
    gw.write_config()
    gw.start()
    pf = Postfix(f"[127.0.0.1]:{gw.port}", extra={"smtp_bind_address": "127.0.0.7"})
    pf.start()
    try:
        submit(pf, message(subject="From the school's server"), ["parent@gmail.com"])
        [got] = sink.wait_for(1)
        assert b"Subject: From the school's server" in got.data
        code, text = gw.send(message())
        assert code == 550 and b"Relaying denied: 127.0.0.1" in text
    finally:
        pf.stop()
