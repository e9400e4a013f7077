"""relay.wire_format gives exactly the bytes aiosmtplib would put on the wire, for any input."""

from __future__ import annotations

from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import given, settings
from hypothesis import strategies as st

from mailguard.delivery.relay import wire_format


def aiosmtplib_payload(message: bytes) -> bytes:
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


pieces = st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b".", b"..", b"a", b"\r\n.\r\n",
                                   b"From: x", b"\xff"]), max_size=40).map(b"".join)


@settings(max_examples=500)
@given(st.one_of(pieces, st.binary(max_size=300)))
def test_same_bytes_as_aiosmtplib(message):
    assert wire_format(message) == aiosmtplib_payload(message)


def test_examples():
    assert wire_format(b".a\r\n.\r\nb") == b"..a\r\n..\r\nb\r\n.\r\n"
    assert wire_format(b"") == b"\r\n.\r\n"
    assert wire_format(b"x\n.\r\n") == b"x\r\n..\r\n.\r\n"
