"""The milter's edits: whatever the plan did to a message, the MTA's copy, edited as the milter
asks, comes out byte for byte as the relay would have sent it. The MTA's side is simulated
here as libmilter documents it (insert at the top, change the nth field of a name, add at the
end, replace the body); tests/test_milter.py has a real Postfix do it."""

from __future__ import annotations

import itertools

import pytest
from conftest import message
from hypothesis import given, settings
from hypothesis import strategies as st

from mailguard import mime
from mailguard.model import AddDisclaimer, HideRecipients, TagSubject
from mailguard.rewrite.edits import Edits, edits
from mailguard.rewrite.plan import carry_out

PARENTS = ("p1@gmail.com", "p2@gmail.com", "p3@gmail.com")


def as_mta_applies(raw: bytes, e: Edits) -> bytes:
    """The MTA's copy after the edits, in the order libmilter sends them."""
    end = mime.header_end(raw)
    fields, blank = mime.split_block(raw[:end])
    rows = [[mime.name_of(f), f] for f in fields]

    def field(name: str, value: str) -> bytes:
        return f"{name}:{value}".encode("utf-8", "surrogateescape").replace(b"\n", b"\r\n") + b"\r\n"

    for name, value in reversed(e.top):
        rows.insert(0, [name.lower().encode(), field(name, value)])
    for name, nth, value in e.change:
        same = [r for r in rows if r[0] == name.lower().encode()]
        if value:
            same[nth - 1][1] = field(name, value)
        else:
            del rows[next(i for i, r in enumerate(rows) if r is same[nth - 1])]
    rows.extend([name.lower().encode(), field(name, value)] for name, value in e.append)
    body = raw[end:] if e.body is None else e.body
    return b"".join(r[1] for r in rows) + (blank or b"\r\n") + body


BULK = message(to=", ".join(PARENTS), subject="Trip", extra_headers=f"Cc: {PARENTS[0]}\r\n"
               "X-Mailguard-Bcc: forged\r\n", body="Coaches leave at 9.\r\n")
SIGNED = (b"From: teacher@example.sch.uk\r\nTo: p1@gmail.com\r\nSubject: Signed\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/signed; boundary=b; "
          b"protocol=\"application/pkcs7-signature\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n"
          b"\r\nHello\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--b--\r\n")
STEPS = [TagSubject("Personal:"), AddDisclaimer("Trust: monitored.", "<p>Trust</p>"),
         HideRecipients(PARENTS, "teacher@example.sch.uk", "3 moved")]


@pytest.mark.parametrize("steps", [s for n in range(len(STEPS) + 1)
                                   for s in itertools.combinations(STEPS, n)])
@pytest.mark.parametrize("raw", [BULK, message(), message(subject="Folded\r\n\tsubject")])
def test_every_combination_of_the_plan_comes_out_as_the_relay_sends_it(raw, steps):
    new = b"X-Mailguard: v=1; i=X\r\nDKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\n" + \
        carry_out(raw, steps, None)
    assert as_mta_applies(raw, edits(raw, new)) == new


def test_a_wrapped_message_moves_its_content_fields_into_the_new_part():
    new = carry_out(SIGNED, (AddDisclaimer("Trust: monitored.", "", wrap=True),), None)
    e = edits(SIGNED, new)
    assert as_mta_applies(SIGNED, e) == new
    assert ("Content-Type", 1, "") not in e.change and e.body is not None
    assert [name for name, _ in e.append] == []


def test_nothing_changed_asks_for_nothing():
    raw = message()
    assert not edits(raw, raw)
    assert edits(raw, b"X-Mailguard: v=1\r\n" + raw) == Edits(top=(("X-Mailguard", " v=1"),))


def test_deleting_two_fields_of_a_name_asks_for_the_later_one_first():
    raw = b"A: 1\r\nCc: x\r\nB: 2\r\nCc: y\r\n\r\nbody\r\n"
    e = edits(raw, b"A: 1\r\nB: 2\r\n\r\nbody\r\n")
    assert e.change == (("Cc", 2, ""), ("Cc", 1, ""))


field_names = st.sampled_from(["Subject", "To", "Cc", "X-A", "Received", "Content-Type"])
values = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(field_names, values), min_size=1, max_size=8), st.data())
def test_any_in_place_rewrite_round_trips(old_fields, data):
    """In-place changes, deletions and fields added at the end, as the rewrites make them."""
    new_fields = []
    for name, value in old_fields:
        fate = data.draw(st.sampled_from(["keep", "change", "delete"]))
        if fate == "keep":
            new_fields.append((name, value))
        elif fate == "change":
            new_fields.append((name, data.draw(values)))
    new_fields += data.draw(st.lists(st.tuples(field_names, values), max_size=3))
    top = data.draw(st.lists(st.tuples(st.sampled_from(["X-Mailguard", "DKIM-Signature"]),
                                       values), max_size=2))

    def block(items):
        return b"".join(f"{n}: {v}\r\n".encode() for n, v in items)

    old = b"From: t@example.sch.uk\r\n" + block(old_fields) + b"\r\nbody\r\n"
    new = block(top) + b"From: t@example.sch.uk\r\n" + block(new_fields) + b"\r\nbody\r\n"
    assert as_mta_applies(old, edits(old, new)) == new
