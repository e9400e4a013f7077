"""Disclaimer placement and fidelity, one behaviour a test; S/MIME checked with openssl."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
from email.policy import default as default_policy
from pathlib import Path

import pytest
from conftest import ROOT, message

from mailguard.mime.parts import scan
from mailguard.rewrite.disclaimer import Disclaimer, apply, html_fragment

TEXT = "Ashby Trust: this email is confidential and may be monitored."
D = Disclaimer(TEXT, html_fragment(TEXT))
BOTTOM = Disclaimer(TEXT, html_fragment(TEXT), position="bottom")


def body_text(raw: bytes, subtype: str = "plain") -> str:
    msg = email.message_from_bytes(raw, policy=default_policy)
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


def plain(body: str, extra: str = "") -> bytes:
    return message(body=body.replace("\n", "\r\n"), extra_headers=extra)


@pytest.mark.parametrize("thread", [
    "-----Original Message-----\nFrom: Head\nSent: Monday\n\nold text\n",          # Outlook
    "________________________________\nFrom: Head <h@x.sch.uk>\nSent: Monday\n",  # Outlook web
    "On Mon, 23 Nov 2026 at 09:00, Head <h@x.sch.uk> wrote:\n> old text\n",        # Gmail
    "On 23 Nov 2026, at 09:00, Head <h@x.sch.uk> wrote:\n\n> old text\n",           # Apple Mail
    "On 23/11/2026 09:00, Head wrote:\n> old text\n",                               # Thunderbird
    "-------- Forwarded Message --------\nSubject: old\n",                          # Thunderbird fwd
    "---------- Forwarded message ---------\nFrom: Head\n",                         # Gmail fwd
    "Begin forwarded message:\n\nFrom: Head\n",                                     # Apple fwd
])
def test_plain_text_disclaimer_goes_under_the_new_text_above_the_thread(thread):
    out = body_text(apply(plain("Thanks, see you then.\n\n" + thread), D))
    assert out.index("Thanks, see you then.") < out.index(TEXT) < out.index(thread.split("\n")[0])
    assert out.startswith("Thanks, see you then.\n\n" + TEXT + "\n\n")


def test_bottom_position_puts_it_at_the_very_end():
    out = body_text(apply(plain("Thanks.\n\nOn Mon, Head wrote:\n> old\n"), BOTTOM))
    assert out.rstrip().endswith(TEXT)


@pytest.mark.parametrize("quote", [
    '<div class="gmail_quote"><div dir="ltr">On Mon, Head wrote:</div><blockquote>old',
    '<div id="appendonsend"></div><hr><div id="divRplyFwdMsg">From: Head',
    '<div class="moz-cite-prefix">On 23/11/2026, Head wrote:</div><blockquote type="cite">',
    '<blockquote type="cite">old text</blockquote>',
])
def test_html_disclaimer_goes_above_the_quoted_thread(quote):
    html = f"<html><body><p>Thanks, see you then.</p>{quote}</body></html>"
    raw = message(body=html, extra_headers="Content-Type: text/html; charset=utf-8\r\n")
    out = body_text(apply(raw, D), "html")
    assert out.index("see you then") < out.index('class="mailguard-disclaimer"') < out.index(quote)


def test_html_without_a_thread_gets_it_inside_the_end_of_body():
    raw = message(body="<html><body><p>Hello</p></body></html>",
                  extra_headers="Content-Type: text/html; charset=utf-8\r\n")
    out = body_text(apply(raw, D), "html")
    assert out.endswith("</div></body></html>") and "<p>Hello</p><div class" in out


def test_no_bare_line_feeds_from_multi_line_templates():
    d = Disclaimer("Line one\nline two", "<div>\n<p>Line one</p>\n<p>line two</p>\n</div>")
    raw = message(body="<p>" + "word " * 40 + "</p>",
                  extra_headers="Content-Type: text/html; charset=utf-8\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n")
    out = apply(raw, d)
    assert re.search(rb"(?<!\r)\n", out) is None, "a bare LF in a CRLF message"
    assert "<p>line two</p>" in body_text(out, "html")


def test_placeholders_are_escaped_in_html():
    d = Disclaimer("A & B <Primary>", html_fragment("A & B <Primary>"))
    raw = message(body="<p>x</p>", extra_headers="Content-Type: text/html; charset=utf-8\r\n")
    out = body_text(apply(raw, d), "html")
    assert "A &amp; B &lt;Primary&gt;" in out and "<Primary>" not in out


def test_format_flowed_lines_stay_flowed():
    d = Disclaimer("From the school office. \n>Monitored.", "")
    raw = plain("Soft break here \nand the rest.\n",
                'Content-Type: text/plain; charset=utf-8; format=flowed\r\n')
    out = apply(raw, d).decode()
    added = out[out.index(" From the school office"):]
    assert " From the school office.\r\n >Monitored." in added  # space-stuffed, no soft break
    assert "Soft break here \r\nand the rest." in out  # the sender's own flowed text is kept


def test_charset_kept_when_it_can_hold_the_disclaimer():
    body = "Caf\u00e9 \u20ac5".encode("cp1252")
    raw = message(extra_headers="Content-Type: text/plain; charset=windows-1252\r\n"
                                "Content-Transfer-Encoding: 8bit\r\n").replace(
        b"Please bring a packed lunch.", body)
    d = Disclaimer("Fees \u20ac0 \u2013 monitored.", "")
    out = apply(raw, d)
    assert b"charset=windows-1252" in out and b"Fees \x800 \x96 monitored." in out


def test_charset_becomes_utf8_when_it_cannot():
    raw = message(extra_headers="Content-Type: text/plain; charset=iso-8859-1\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n").replace(
        b"Please bring a packed lunch.", b"Caf=E9")
    out = apply(raw, Disclaimer("Zo\u0142\u0105d\u017a \u2014 monitored.", ""))
    assert b"charset=utf-8" in out and b"Content-Transfer-Encoding: quoted-printable" in out
    assert body_text(out).startswith("Caf\u00e9\n\nZo\u0142\u0105d\u017a \u2014 monitored.")


def test_base64_stays_base64_and_ascii_7bit_gets_quoted_printable_for_8bit_text():
    raw = message(extra_headers="MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                "Content-Transfer-Encoding: base64\r\n").replace(
        b"Please bring a packed lunch.\r\n", b"SGVsbG8gdGhlcmU=\r\n")
    out = apply(raw, D)
    assert b"Content-Transfer-Encoding: base64" in out
    assert body_text(out) == "Hello there\n\n" + TEXT + "\n"
    seven = apply(message(), Disclaimer("Monitored \u2013 yes.", ""))
    assert b"Content-Transfer-Encoding: quoted-printable" in seven
    assert b"MIME-Version: 1.0" in seven


ATTACHED = (
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
    b"--b1\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y\r\nSubject: old\r\n\r\nold body\r\n"
    b"--b1\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment\r\n\r\n"
    b"attached notes\r\n--b1--\r\n")


def test_attachments_forwarded_messages_and_invites_are_never_touched():
    raw = b"From: t@example.sch.uk\r\nTo: p@gmail.com\r\nSubject: s\r\n" + ATTACHED
    out = apply(raw, D)
    before, after = scan(raw), scan(out)
    for old, new in zip(before.children[1:], after.children[1:], strict=True):
        assert out[new.start:new.end] == raw[old.start:old.end]
    assert TEXT.encode() in out[after.children[0].start:after.children[0].end]
    assert out.count(TEXT.encode()) == 1


def test_once_only_even_when_a_reply_quotes_it():
    once = apply(plain("Hi"), D)
    assert apply(once, D) == once
    reply = plain("Thanks!\n\nOn Mon, Head wrote:\n> Hi\n>\n> " + TEXT + "\n")
    assert apply(reply, D) == reply


def test_a_sender_school_gets_its_own_wording_through_the_gateway(make_gateway, sink, tmp_path):
    folder = tmp_path / "disclaimers"
    folder.mkdir()
    (folder / "default.txt").write_text("{trust}: monitored mail.\n")
    (folder / "second.sch.uk.txt").write_text("{school} ({sender}): monitored mail.\n")
    (folder / "personal.txt").write_text("Personal views of {sender}, not {school}'s.\n")
    gw = make_gateway({"checks": {"disclaimer": {
        "action": "log", "folder": str(folder),
        "schools": {"second.sch.uk": "Second & Co Primary"}}}})
    assert gw.send(message())[0] == 250
    assert gw.send(message(from_="head@second.sch.uk", subject="[Personal] party"),
                   sender="head@second.sch.uk")[0] == 250
    first, second = sink.wait_for(2)
    assert "Test Academy Trust: monitored mail." in body_text(first.data)
    text = body_text(second.data)
    assert text.index("Personal views of head@second.sch.uk, not Second & Co Primary's.") < (
        text.index("Second & Co Primary (head@second.sch.uk): monitored mail."))
    events = gw.events()
    assert events[0]["checks"] == ["disclaimer.added"]
    assert events[1]["checks"] == ["disclaimer.personal_notice", "disclaimer.added"]


# S/MIME: a throwaway CA made here, openssl signs, the wrapped message still verifies.
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None and not os.environ.get("CI"),
                                   reason="openssl is not installed")


def openssl(*args: str, cwd: Path, input: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], cwd=cwd, input=input, capture_output=True,
                          check=True, timeout=60).stdout


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    d = tmp_path_factory.mktemp("smime")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-subj", "/CN=mailguard test CA", "-days", "2", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "s.key", "-out", "s.csr",
            "-subj", "/CN=teacher/emailAddress=teacher@example.sch.uk", cwd=d)
    openssl("x509", "-req", "-in", "s.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "s.pem", "-days", "2", cwd=d)
    return d


def verifies(folder: Path, entity: bytes) -> bool:
    (folder / "check.eml").write_bytes(entity)
    result = subprocess.run(["openssl", "smime", "-verify", "-in", "check.eml", "-CAfile",
                             "ca.pem", "-out", "/dev/null"], cwd=folder, capture_output=True)
    return result.returncode == 0


@needs_openssl
@pytest.mark.parametrize("opaque", [False, True], ids=["multipart-signed", "pkcs7-mime"])
def test_smime_signed_mail_is_wrapped_and_still_verifies(signer, opaque):
    content = b"Content-Type: text/plain; charset=utf-8\r\n\r\nReport attached.\r\n"
    signed = openssl("smime", "-sign", "-signer", "s.pem", "-inkey", "s.key",
                     *(["-nodetach"] if opaque else []), cwd=signer, input=content)
    raw = b"From: teacher@example.sch.uk\r\nTo: p@gmail.com\r\nSubject: signed\r\n" + signed
    assert verifies(signer, raw)
    out = apply(raw, D)
    after = scan(out)
    assert after.content_type == "multipart/mixed"
    inner = after.children[0]
    assert verifies(signer, out[inner.start:inner.end] + b"\r\n")
    assert TEXT.encode() in out[after.children[1].start:after.children[1].end]
    if not opaque:  # the control: writing inside the signed text breaks the signature
        tampered = raw.replace(b"Report attached.", b"Report attached. " + TEXT.encode())
        assert not verifies(signer, tampered)


def test_shipped_templates_load():
    from mailguard import config

    settings = config.load(ROOT / "config/mailguard.toml")
    d = settings.checks["disclaimer"]
    assert "default" in d.templates and d.personal is not None
