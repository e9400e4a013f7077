"""Who hears of held mail, through the real gateway and a real upstream: the DPO of every
hold (one notice each while few, a digest when many), the safeguarding lead of theirs, the
sender when asked; the sender again on release; nothing lost when the upstream says no."""

from __future__ import annotations

import re
import time

from conftest import ROOT, message

PEOPLE = {"organisation": {"dpo": "dpo@example.sch.uk", "safeguarding_lead": "dsl@example.sch.uk"},
          "web": {"public_url": "https://mailguard.example.sch.uk"},
          "notices": {"interval": 0.5, "digest_after": 3},
          "checks": {"identity": {"action": "quarantine"}, "language": {
              "action": "log", "folder": str(ROOT / "wordlists"),
              "categories": {"threats": {"high": "quarantine"}}}}}


def to(sink, address: str, count: int = 1, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [m for m in sink.messages if m.recipients == [address]]
        if len(got) >= count:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{address} got {len(got)} notices, wanted {count}")


def test_the_dpo_and_the_safeguarding_lead_hear_of_what_is_theirs(make_gateway, sink):
    gw = make_gateway(PEOPLE)
    _, impostor = gw.send(message(from_="head@gmail.com", subject="Secret plans"))
    _, threat = gw.send(message(subject="Tonight", body="I know where you live.\r\n"))
    ids = [re.search(rb"reference (\w+)", t).group(1).decode() for t in (impostor, threat)]
    dpo = to(sink, "dpo@example.sch.uk", 2)
    [lead] = to(sink, "dsl@example.sch.uk", 1)
    assert ids[1].encode() in lead.data and ids[0].encode() not in lead.data
    first = next(m.data.decode() for m in dpo if ids[0] in m.data.decode())
    assert f"https://mailguard.example.sch.uk/message/{ids[0]}" in first
    assert "identity.foreign_from" in first and "held for review" in first
    assert "Secret plans" not in first and "packed lunch" not in first     # no content
    assert b"where you live" not in lead.data and lead.sender == "<>"
    time.sleep(1.5)
    assert len([m for m in sink.messages if m.recipients == ["dpo@example.sch.uk"]]) == 2


def test_many_holds_make_one_digest(make_gateway, sink):
    gw = make_gateway(PEOPLE)
    with gw.client() as c:   # eight in one connection: usually all before one flush; any held
                             # after the digest wait for the next one (digest_minutes)
        for _ in range(8):
            c.mail("teacher@example.sch.uk")
            c.rcpt("parent@gmail.com")
            assert c.data(message(from_="head@gmail.com"))[0] == 250
            c.rset()
    deadline = time.monotonic() + 20   # the digest is sent at the loop's next turn
    while time.monotonic() < deadline:
        notices = [m.data.decode() for m in sink.messages
                   if m.recipients == ["dpo@example.sch.uk"]]
        digests = [n for n in notices if "messages held for review" in n]
        if digests:
            break
        time.sleep(0.1)
    assert len(digests) == 1 and len(notices) <= 4
    mentioned = set(re.findall(r"\b([0-9A-F]{16}): from", "".join(notices)))
    # any held after the digest
    waiting = {q for (q,) in gw.sql("SELECT qid FROM notices WHERE claimed IS NULL")}
    held = {q for (q,) in gw.sql("SELECT id FROM quarantine")}
    assert len(held) == 8 and mentioned | waiting == held and not mentioned & waiting
    assert "https://mailguard.example.sch.uk/queue" in digests[0]


def test_senders_hear_when_held_and_when_released(make_gateway, sink):
    gw = make_gateway({**PEOPLE, "notices": {"interval": 0.5, "sender_held": True}})
    _, text = gw.send(message(from_="head@gmail.com"))
    qid = re.search(rb"reference (\w+)", text).group(1).decode()
    [held] = to(sink, "teacher@example.sch.uk")
    body = held.data.decode()
    assert "has not been delivered yet" in body and "leventhorpe" in body and qid in body
    assert gw.cli("quarantine", "release", qid).returncode == 0
    released = to(sink, "teacher@example.sch.uk", 2)[1].data.decode()
    assert "has now been delivered to 1 recipient(s)" in released and "parent@gmail.com" in released


def test_a_refused_notice_is_tried_again_not_lost(make_gateway, sink):
    sink.handler.refuse["dpo@example.sch.uk"] = "451 4.3.0 try later"
    gw = make_gateway(PEOPLE)
    _, text = gw.send(message(from_="head@gmail.com"))
    qid = re.search(rb"reference (\w+)", text).group(1).decode()
    deadline, tries = time.monotonic() + 20, 0
    while tries < 1 and time.monotonic() < deadline:   # refused, and put back to try again
        time.sleep(0.1)
        tries = sum(t for (t,) in gw.sql(
            "SELECT tries FROM notices WHERE recipient = 'dpo@example.sch.uk'"))
    [(tries,)] = gw.sql("SELECT tries FROM notices WHERE recipient = 'dpo@example.sch.uk'")
    assert tries >= 1
    assert not [m for m in sink.messages if m.recipients == ["dpo@example.sch.uk"]]
    del sink.handler.refuse["dpo@example.sch.uk"]
    [notice] = to(sink, "dpo@example.sch.uk")
    assert qid.encode() in notice.data


def test_retention_purges_with_an_audit_entry(make_gateway, sink):
    gw = make_gateway({"checks": {"identity": {"action": "quarantine"}},
                       "storage": {"quarantine_retention_days": 1}})
    _, text = gw.send(message(from_="head@gmail.com"))
    qid = re.search(rb"reference (\w+)", text).group(1).decode()
    gw.sql("UPDATE quarantine SET ts = ts - 2 * 86400")
    assert gw.cli("purge").returncode == 0
    assert not gw.holds_content(qid)
    rows = [tuple(r) for r in gw.sql(
        "SELECT actor, action, detail FROM audit WHERE quarantine_id = ?", (qid,))]
    assert ("retention", "purge", "content removed after retention (was held)") in rows
