"""Recipient limits over the real SMTP path: an ordinary mailbox writing to too many people
is refused with what to do; the office's bulk sender is not."""

from __future__ import annotations

import json
import re
import time

from conftest import message

LIMITS = {"checks": {"limits": {"action": "reject", "max_recipients": 5,
                                "bulk_senders": ["office@example.sch.uk"]}}}
MANY = tuple(f"parent{i}@gmail.com" for i in range(8))


def test_too_many_recipients_from_a_teacher_are_refused(make_gateway, sink):
    gw = make_gateway(LIMITS)
    code, text = gw.send(message(to="undisclosed-recipients:;"), recipients=MANY)
    assert code == 550
    assert b"8 recipients; ordinary mailboxes may send to 5 at most" in text
    assert b"bulk mail system" in text and b"soke 'general guidance'" in text
    assert gw.send(message(to="undisclosed-recipients:;"), recipients=MANY[:5])[0] == 250


def test_the_bulk_sender_may_write_to_everyone(make_gateway, sink):
    gw = make_gateway(LIMITS)
    raw = message(from_="office@example.sch.uk", to="undisclosed-recipients:;")
    assert gw.send(raw, sender="office@example.sch.uk", recipients=MANY)[0] == 250
    [got] = sink.wait_for(1)
    assert sorted(got.recipients) == sorted(MANY)


def test_a_burst_past_the_hourly_limit_is_deferred_and_it_is_told(make_gateway, sink):
    gw = make_gateway({"checks": {"limits": {"action": "reject", "hourly": 5,
                                             "bulk_senders": ["office@example.sch.uk"]}}})
    pair = ("a@otherschool.org.uk", "b@otherschool.org.uk")
    assert gw.send(message(to="a@otherschool.org.uk"), recipients=pair)[0] == 250
    assert gw.send(message(to="a@otherschool.org.uk"), recipients=pair)[0] == 250
    code, text = gw.send(message(to="a@otherschool.org.uk"), recipients=pair)
    assert code == 451
    assert b"has sent to 4 recipients in the last hour; the limit is 5" in text
    assert b"IT has been told" in text
    again = gw.send(message(to="a@otherschool.org.uk"), recipients=pair[:1])
    assert again[0] == 250                                # one more still fits the hour
    office = message(from_="office@example.sch.uk", to="a@otherschool.org.uk")
    assert gw.send(office, sender="office@example.sch.uk", recipients=MANY)[0] == 250
    delivered = sink.wait_for(5)
    notices = [m for m in delivered if m.recipients == ["postmaster@example.sch.uk"]]
    assert len(notices) == 1                              # once per sender per hour
    body = notices[0].data.decode()
    assert "deferring mail from teacher@example.sch.uk" in body and "compromised" in body
    assert [e["verdict"] for e in gw.events()].count("tempfailed") == 1


def test_workers_share_one_hourly_count(make_gateway, sink):
    gw = make_gateway({"server": {"workers": 2},
                       "checks": {"limits": {"action": "reject", "hourly": 6}}})
    deadline = time.monotonic() + 10
    while gw.log().count('"listening"') < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    codes = [gw.send(message(to="a@otherschool.org.uk"), recipients=("a@otherschool.org.uk",))[0]
             for _ in range(14)]
    assert codes == [250] * 6 + [451] * 8          # not 12: the second worker adds nothing
    served = {json.loads(line)["pid"] for line in gw.log().splitlines()
              if '"event": "transaction"' in line}
    assert len(served) == 2                         # both workers took some of the mail
    delivered = sink.wait_for(7)
    assert sum(m.recipients == ["postmaster@example.sch.uk"] for m in delivered) == 1
    gw.restart()                                    # the count outlives a restart
    assert gw.send(message(to="a@otherschool.org.uk"),
                   recipients=("a@otherschool.org.uk",))[0] == 451


def test_a_release_from_quarantine_is_not_a_new_send(make_gateway, sink):
    gw = make_gateway({"checks": {"limits": {"action": "reject", "hourly": 1},
                                  "identity": {"action": "quarantine"}}})
    code, text = gw.send(message(from_="head@gmail.com"))
    assert code == 250 and b"Held for review" in text
    qid = re.search(rb"reference (\w+)", text).group(1).decode()
    out = gw.cli("quarantine", "release", qid)
    assert out.returncode == 0, out.stderr
    assert sink.wait_for(1)[0].recipients == ["parent@gmail.com"]
