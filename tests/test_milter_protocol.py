"""The milter socket spoken to directly (tests/milterclient.py plays the MTA), for what a real
Postfix never sends but a network or another MTA may: packets cut at every byte, several
messages in one write, a silent connection. Postfix itself is in test_milter.py."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import message
from milterclient import MilterClient, edited

TEACHER = "teacher@example.sch.uk"


def disclaimer(tmp_path):
    folder = tmp_path / "disclaimers"
    folder.mkdir(exist_ok=True)
    (folder / "default.txt").write_text("{trust}: monitored mail from {sender}.\n")
    return {"checks": {"disclaimer": {"action": "log", "folder": str(folder)}}}


@pytest.mark.parametrize("write", ["bytes", "batch"])
def test_packets_cut_anywhere_or_run_together_give_each_message_its_own_verdict(
        make_milter, tmp_path, write):
    """One byte per write, or a connection's three messages in one write: the same edits
    and verdicts as a packet per write, each for its own message, in order."""
    gw = make_milter(disclaimer(tmp_path), postfix=False)
    client = MilterClient(gw.milter_port, write=write)
    client.connect()
    mails = [(f"teacher{i}@example.sch.uk", message(from_=f"teacher{i}@example.sch.uk",
                                                      body=f"Message number {i}.\r\n"))
             for i in range(2)]
    mails.append(("impostor@gmail.com", message(from_="impostor@gmail.com")))
    for sender, raw in mails:
        client.put(sender, ["parent@gmail.com"], raw, queue_id=f"Q{sender[:9]}")
    answers = [client.verdict() for _ in mails]
    client.close()
    for i, answer in enumerate(answers[:2]):
        assert answer.code == b"a"   # accepted, with its own disclaimer
        kept = edited(mails[i][1], answer).decode()
        assert f"Message number {i}." in kept
        assert f"monitored mail from teacher{i}@example.sch.uk" in kept
        assert kept.count("monitored mail") == 1
        assert "X-Mailguard: v=1;" in kept
    assert answers[2].code == b"y"   # refused with the clause, not another message's verdict
    assert answers[2].text().startswith("550") and "the From address" in answers[2].text()
    assert [e["verdict"] for e in gw.events()] == ["delivered", "delivered", "rejected"]
    assert "Traceback" not in gw.log()


def test_a_silent_connection_is_closed_and_a_slow_one_is_not(make_milter):
    """`[milter] timeout`: an MTA connection quiet that long is closed; one that sends a
    little at a time, never quiet that long, stays and gets its verdict."""
    gw = make_milter({"milter": {"timeout": 10}}, postfix=False)
    silent = MilterClient(gw.milter_port)
    slow = MilterClient(gw.milter_port)
    slow.connect()
    result: dict[str, object] = {}

    def dribble() -> None:
        raw = message(from_=TEACHER)
        head, _, body = raw.partition(b"\r\n\r\n")
        slow.command(b"M", f"<{TEACHER}>\0".encode())
        slow.command(b"R", b"<parent@gmail.com>\0")
        for line in head.split(b"\r\n"):   # a field every 3 s: 15 s in all
            time.sleep(3)
            name, _, value = line.partition(b":")
            slow.command(b"L", name + b"\0" + value + b"\0")
        slow.command(b"B", body)
        slow.send(b"\0\0\0\x01E")
        result["answer"] = slow.verdict()

    worker = threading.Thread(target=dribble)
    worker.start()
    started = time.monotonic()
    silent.sock.settimeout(25)
    assert silent.sock.recv(10) == b""   # closed by mailguard, with nothing said
    assert 9 <= time.monotonic() - started < 20
    worker.join(30)
    assert result["answer"].code == b"a"   # the slow one was never cut off
    assert "milter_idle_closed" in gw.log()
    silent.close()
    slow.close()
