"""Recipient limits over the real SMTP path: an ordinary mailbox writing to too many people
is refused with what to do; the office's bulk sender is not."""

from __future__ import annotations

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
