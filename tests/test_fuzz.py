"""Malformed SMTP and MIME thrown at a running gateway: it answers, it never falls over."""

from __future__ import annotations

import socket

from conftest import message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

VERBS = [b"HELO", b"EHLO", b"MAIL FROM:", b"RCPT TO:", b"DATA", b"RSET", b"NOOP", b"QUIT",
         b"VRFY", b"AUTH", b"STARTTLS", b"BDAT", b"XCLIENT", b""]


def still_relays(gw) -> None:
    code, text = gw.send(message())
    assert code == 250, text
    assert gw.proc.poll() is None


def talk(gw, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.settimeout(2)
        s.recv(4096)
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        except (TimeoutError, ConnectionError):
            pass


command = st.tuples(st.sampled_from(VERBS), st.binary(max_size=300)).map(
    lambda t: t[0] + t[1].replace(b"\n", b"") + b"\r\n")


@FUZZ
@given(st.lists(command, max_size=12), st.binary(max_size=2000))
def test_malformed_smtp_gets_replies_and_the_server_stays_up(gateway, sink, commands, tail):
    talk(gateway, b"".join(commands) + tail)
    still_relays(gateway)


header_line = st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from([b"From", b"To", b"Content-Type", b"Content-Transfer-Encoding",
                               b"MIME-Version", b"Subject", b"X-Mailguard"]),
              st.binary(max_size=200)).map(lambda t: t[0] + b": " + t[1]),
    st.just(b'Content-Type: multipart/mixed; boundary="zz"'),
)
body_line = st.one_of(st.binary(max_size=300), st.sampled_from([b"--zz", b"--zz--", b".", b".."]))


@FUZZ
@given(st.lists(header_line, max_size=15), st.lists(body_line, max_size=30))
def test_malformed_mime_is_answered_properly(gateway, sink, headers, body):
    raw = b"\r\n".join(h.replace(b"\r", b"").replace(b"\n", b"") for h in headers) + b"\r\n\r\n"
    raw += b"\r\n".join(b.replace(b"\r", b"").replace(b"\n", b"") for b in body) + b"\r\n"
    code, text = gateway.send(raw)
    # Delivered, held, or refused with a reason: never a crash, never a silent drop.
    assert code in (250, 550), (code, text)
    if code == 250:
        assert b"relayed" in text or b"Held for review" in text
    still_relays(gateway)
