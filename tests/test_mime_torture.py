"""MIME torture: boundaries past RFC 2046's rules, digests, parts without headers, multiparts
that never close, x-gzip64. The byte-range reading must agree with the standard library's;
the disclaimer goes into the displayed body and every other part keeps its bytes, as the
standard library reads both; where the readings differ the message goes unchanged."""

from __future__ import annotations

import asyncio
import base64
import email
import gzip
from email.message import Message
from email.policy import compat32

import pytest
from conftest import CORPUS, ROOT
from test_disclaimer_properties import NEEDLE, D, flat, holds_the_rules

from mailguard import config, mime
from mailguard.checks import disclaimer as disclaimer_check
from mailguard.mime import partcheck
from mailguard.mime.parts import displayed, gunzip64, scan, structure_problem, text_of
from mailguard.model import Client, Envelope, Mail
from mailguard.rewrite.disclaimer import apply

HEAD = ("From: teacher@example.sch.uk\r\nTo: parent@gmail.com\r\nSubject: torture\r\n"
        "MIME-Version: 1.0\r\n")
PDF = base64.b64encode(b"%PDF-1.4 pretend attachment bytes " * 20).decode()


def mixed(boundary: str, *, quoted: str | None = None, close: bool = True,
          delimiter: str | None = None) -> bytes:
    """Text, then a PDF, under `boundary` (its parameter written as `quoted` if given)."""
    param = quoted if quoted is not None else f'"{boundary}"'
    line = delimiter if delimiter is not None else f"--{boundary}"
    text = (f"{HEAD}Content-Type: multipart/mixed; boundary={param}\r\n\r\n"
            f"Preamble.\r\n{line}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Hello parents,\r\nthe trip is on Friday.\r\n{line}\r\n"
            f'Content-Type: application/pdf; name="letter.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="letter.pdf"\r\n\r\n{PDF}\r\n')
    if close:
        text += f"--{boundary}--\r\nEpilogue.\r\n"
    return text.encode()


LONG = "=_mailguard_" + "x" * 90
CASES = {
    "boundary over 70 characters": mixed(LONG),
    "boundary over 70 characters, folded onto its own line": mixed(
        LONG, quoted=f'\r\n\t"{LONG}"'),
    "boundary over 70 characters, unquoted": mixed(LONG, quoted=LONG),
    "boundary ending with a space": mixed("abc def ", delimiter="--abc def"),
    "boundary ending with a space, written with it": mixed("abc def ", delimiter="--abc def "),
    "boundary with quotes and punctuation": mixed('a\\"b\'(c)+_,-./:=?', quoted=(
        '"a\\\\\\"b\'(c)+_,-./:=?"')),
    "boundary with punctuation, unquoted": mixed("a'(c)+_,-./=?", quoted="a'(c)+_,-./=?"),
    "delimiter with trailing white space": mixed("tws", delimiter="--tws \t"),
    "never closed": mixed("open", close=False),
    "never closed, no final line break": mixed("open", close=False).rstrip(b"\r\n"),
}


def _nested_unclosed() -> bytes:
    inner = (b"Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n"
             b"Content-Type: text/plain\r\n\r\nPlain words.\r\n--inner\r\n"
             b"Content-Type: text/html\r\n\r\n<p>HTML words.</p>\r\n")
    return (HEAD.encode() + b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n"
            + inner + b"--outer\r\nContent-Type: application/octet-stream\r\n\r\nBINARY\r\n"
            b"--outer--\r\n")


def _digest() -> bytes:
    one = b"\r\nFrom: a@example.org\r\nSubject: first\r\n\r\nFirst message.\r\n"
    two = b"\r\nFrom: b@example.org\r\nSubject: second\r\n\r\nSecond message.\r\n"
    return (HEAD.encode() + b"Content-Type: multipart/digest; boundary=dg\r\n\r\n--dg\r\n"
            + one + b"--dg\r\n" + two + b"--dg--\r\n")


def _gzip64() -> bytes:
    words = b"Dear parents,\r\nthe trip is on Friday.\r\n"
    body = base64.encodebytes(gzip.compress(words)).decode().replace("\n", "\r\n")
    return (f"{HEAD}Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: x-gzip64\r\n\r\n{body}").encode()


def _no_blank_line() -> bytes:
    """An attachment whose body follows its fields with no blank line (Gmail issue 1189)."""
    return (f"{HEAD}Content-Type: multipart/mixed; boundary=nb\r\n\r\n--nb\r\n"
            "Content-Type: text/plain\r\n\r\nSee the file.\r\n--nb\r\n"
            "Content-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n"
            f"{PDF}\r\n--nb--\r\n").encode()


CASES |= {"nested multipart never closed": _nested_unclosed(),
          "digest whose parts start with a blank line": _digest(),
          "x-gzip64 body": _gzip64(), "attachment with no blank line": _no_blank_line()}


def leaves(msg: Message) -> list[Message]:
    return [p for p in msg.walk() if not p.is_multipart()]


@pytest.mark.parametrize("name", list(CASES))
def test_the_byte_ranges_agree_with_the_standard_library(name):
    raw = CASES[name]
    assert partcheck.disagreement(raw, scan(raw)) is None


@pytest.mark.parametrize("name", list(CASES))
def test_the_disclaimer_changes_only_the_displayed_body(name):
    raw = CASES[name]
    out = apply(raw, D)
    assert NEEDLE in flat(" ".join(t for part in displayed(scan(out))
                                   if (t := text_of(out, part)) is not None)
                          or out.decode("utf-8", "replace"))
    before = email.message_from_bytes(raw, policy=compat32)
    after = email.message_from_bytes(out, policy=compat32)
    kept_before = [(p.items(), p._payload) for p in leaves(before)
                   if p.get_content_maintype() != "text" or p.get_filename()]
    kept_after = [(p.items(), p._payload) for p in leaves(after)
                  if p.get_content_maintype() != "text" or p.get_filename()]
    assert kept_after == kept_before      # attachments and forwarded messages untouched
    if before.get_content_type() == "multipart/digest":   # each message of it, too
        assert [m.as_bytes() for m in before.get_payload()] == [
            m.as_bytes() for m in after.get_payload()[:2]]
    holds_the_rules(raw)


def test_an_x_gzip64_body_is_read_and_gets_the_disclaimer_in_its_own_encoding():
    raw = CASES["x-gzip64 body"]
    tree = scan(raw)
    assert "the trip is on Friday" in text_of(raw, tree)
    out = apply(raw, D)
    new = scan(out)
    assert new.transfer_encoding == "x-gzip64"
    assert NEEDLE in flat(text_of(out, new))
    assert "the trip is on Friday" in text_of(out, new)


def test_a_gzip64_bomb_is_unreadable_not_empty():
    bomb = base64.b64encode(gzip.compress(b"\0" * (80 * 1024 * 1024)))
    assert gunzip64(bomb) is None
    assert gunzip64(b"not gzip at all") is None


def test_a_message_read_otherwise_by_the_standard_library_goes_unchanged_and_says_why():
    """A bare CR ends a line for the standard library and not here: the readings differ,
    so the disclaimer is not spliced in and the finding says where."""
    raw = (f"{HEAD}Content-Type: multipart/mixed; boundary=cr\r\n\r\n--cr\r\n"
           "Content-Type: text/plain\r\n\r\nWords.\r--cr\rContent-Type: application/pdf\r\n\r\n"
           f"{PDF}\r\n--cr--\r\n").encode()
    tree = scan(raw)
    assert partcheck.unusual(raw, tree) == "bare CR line breaks"
    problem = partcheck.disagreement(raw, tree)
    assert problem and "part" in problem
    settings = config.load(ROOT / "config/mailguard.toml")
    mail = Mail(id="T", envelope=Envelope("teacher@example.sch.uk", ("parent@gmail.com",)),
                client=Client(ip="127.0.0.1"), raw=raw)
    found = asyncio.run(disclaimer_check.inspect(mail, settings.checks["disclaimer"]))
    assert [f.rule_id for f in found] == ["disclaimer.skipped"]
    assert found[0].steps == () and found[0].evidence == problem


MESSAGES = sorted((CORPUS / "mime").rglob("*.eml")) if (CORPUS / "mime").is_dir() else []


@pytest.mark.skipif(not MESSAGES, reason="../shared/corpus is not present")
def test_every_corpus_message_we_would_rewrite_is_read_as_the_standard_library_reads_it():
    differ = []
    for path in MESSAGES:
        raw = path.read_bytes()
        end = mime.header_end(raw)
        tree = scan(raw)
        if mime.header_problem(mime.parse_headers(raw[:end]), raw[:end]) or structure_problem(
                tree):
            continue   # held as unparseable: never rewritten
        if problem := partcheck.disagreement(raw, tree):
            differ.append(f"{path.name}: {problem}")
    assert differ == []
    assert len(MESSAGES) > 150


def test_an_attachment_whose_body_follows_its_fields_directly_is_still_inspected():
    """Without the blank line, the whole body used to count as headers: the file went out
    with nothing read. It is read as the standard library (and the recipient) reads it."""
    from mailguard.files.limits import Limits
    from mailguard.files.report import inspect_mail

    mail = Mail(id="T", envelope=Envelope("teacher@example.sch.uk", ("parent@gmail.com",)),
                client=Client(ip="127.0.0.1"), raw=CASES["attachment with no blank line"])
    [report] = inspect_mail(mail, Limits()).files
    assert report.size == len(base64.b64decode(PDF)) and report.mime == "application/pdf"
