"""The disclaimer over real-world mail (../shared/corpus/mime) and generated MIME trees.

For each message: the output parses; every displayed body carries the disclaimer exactly once;
HTML keeps its element tree plus the disclaimer; every other part is byte-identical; signed
or encrypted mail is wrapped with the original entity untouched.
"""

from __future__ import annotations

import asyncio
import base64
import email
import gzip
import quopri
from email.encoders import encode_base64, encode_quopri
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP as SMTP_POLICY
from email.policy import compat32
from email.policy import default as default_policy
from html import escape
from html.parser import HTMLParser

import pytest
from conftest import CORPUS, ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from mailguard import config, mime
from mailguard.mime import partcheck
from mailguard.mime.parts import Part, scan, structure_problem
from mailguard.model import Client, Envelope, Mail
from mailguard.pipeline import assess
from mailguard.rewrite.disclaimer import Disclaimer, apply, displayed, html_fragment, is_signed

TEXT = ("Test Academy Trust: this email is confidential and may be monitored.\n"
        "If it reached you in error, please delete it.")
D = Disclaimer(TEXT, html_fragment(TEXT))
NEEDLE = "this email is confidential and may be monitored"

SETTINGS = config.load(ROOT / "config/mailguard.toml")
MESSAGES = sorted((CORPUS / "mime").rglob("*.eml")) if (CORPUS / "mime").is_dir() else []


def decoded(raw: bytes, part: Part) -> str | None:
    body = raw[part.body_start:part.end]
    cte = part.transfer_encoding
    if cte == "base64":
        data = base64.b64decode(b"".join(body.split()) + b"==")
    elif cte == "quoted-printable":
        data = quopri.decodestring(body)
    elif cte == "x-gzip64":
        data = gzip.decompress(base64.b64decode(b"".join(body.split())))
    elif cte in ("7bit", "8bit", "binary", ""):
        data = body
    else:
        return None
    try:
        return data.decode(part.charset or "us-ascii", "replace")
    except LookupError:
        return None


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)


def tags(text: str) -> list[str]:
    p = Tags()
    p.feed(text)
    return p.tags


def complete(text: str) -> bool:
    """False for HTML that ends inside an unterminated tag: it has no element tree to keep."""
    p = Tags()
    p.feed(text)
    return not p.rawdata.strip()


def leaves(tree: Part) -> list[Part]:
    return [p for p in tree.walk() if not p.children]


def flat(text: str) -> str:
    return " ".join(text.replace(">", " ").split()).lower()


def holds_the_rules(raw: bytes) -> None:
    """Every property the disclaimer rewrite promises, checked on one message."""
    headers_end = mime.header_end(raw)
    if mime.header_problem(mime.parse_headers(raw[:headers_end]), raw[:headers_end]) or (
            structure_problem(scan(raw))):
        # Unreadable: the pipeline holds it as 'unparseable' and never rewrites it.
        mail = Mail(id="C", envelope=Envelope("t@example.sch.uk", ("p@gmail.com",)),
                    client=Client(ip="127.0.0.1"), raw=raw)
        assert asyncio.run(assess(mail, SETTINGS)).reason == "unparseable"
        return
    # The byte ranges are the parts the standard library sees.
    assert partcheck.disagreement(raw, scan(raw)) is None
    out = apply(raw, D)
    email.message_from_bytes(out, policy=compat32)
    parsed = email.message_from_bytes(out, policy=default_policy)
    for _ in parsed.walk():
        pass
    before, after = scan(raw), scan(out)
    if before.maintype == "message":
        assert out == raw  # a fragment (message/partial) is never touched
        return
    wrapped = is_signed(raw, before) or (before.maintype not in ("text", "multipart"))
    if wrapped:
        # The original entity is inside, byte for byte, and the disclaimer beside it.
        assert after.content_type == "multipart/mixed"
        inner = after.children[0]
        assert out[inner.body_start:inner.end].rstrip(b"\r\n") == raw[before.body_start:].rstrip(
            b"\r\n")
        assert NEEDLE in flat(decoded(out, after.children[1]) or "")
        assert apply(out, D) == out
        return
    bodies_in, bodies_out = displayed(before), displayed(after)
    assert len(bodies_in) == len(bodies_out)
    for old, new in zip(bodies_in, bodies_out, strict=True):
        text_in, text_out = decoded(raw, old), decoded(out, new)
        if text_in is None or text_out is None or NEEDLE in flat(text_in):
            assert out[new.start:new.end] == raw[old.start:old.end]  # left alone
            continue
        assert flat(text_out).count(NEEDLE) == 1, new.content_type
        if new.content_type == "text/html" and complete(text_in):
            added = tags(html_fragment(TEXT))
            got = tags(text_out)
            at = next(i for i in range(len(got)) if got[i:i + len(added)] == added)
            assert got[:at] + got[at + len(added):] == tags(text_in)
    # Every part that is not a displayed body is byte-identical, in the same order.
    changed = {p.start for p in bodies_in}
    kept_in = [raw[p.start:p.end] for p in leaves(before) if p.start not in changed]
    kept_out = [out[p.start:p.end] for p in leaves(after)
                if p.start not in {b.start for b in bodies_out}]
    if not bodies_in and before.content_type in ("multipart/mixed", "multipart/digest") and (
            out != raw):
        assert NEEDLE in flat(decoded(out, leaves(after)[-1]) or "")
        kept_out = kept_out[:-1]
    assert kept_out == kept_in
    assert apply(out, D) == out  # once only


@pytest.mark.skipif(not MESSAGES, reason="../shared/corpus is not present")
@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_message(path):
    holds_the_rules(path.read_bytes())


# Generated MIME trees: bodies in several charsets and encodings, nested multiparts,
# attachments, forwarded messages and calendar parts.
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                max_size=200)


@st.composite
def leaf(draw: st.DrawFn) -> MIMEBase:
    kind = draw(st.sampled_from(["plain", "html", "attachment", "calendar", "rfc822"]))
    if kind in ("plain", "html"):
        charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "us-ascii", "windows-1252"]))
        body = draw(texts)
        body = body.encode(charset, "ignore").decode(charset)
        if kind == "html":
            body = f"<html><body><p>{escape(body)}</p></body></html>"
        part = MIMEText(body, kind, charset)
        if draw(st.booleans()):
            del part["Content-Transfer-Encoding"]
            part.set_payload(body.encode(charset, "ignore"))
            encoders = [encode_base64, encode_quopri]
            draw(st.sampled_from(encoders))(part)
        return part
    if kind == "attachment":
        part = MIMEApplication(draw(st.binary(max_size=300)), Name="data.bin")
        part.add_header("Content-Disposition", "attachment", filename="data.bin")
        return part
    if kind == "calendar":
        return MIMEText("BEGIN:VCALENDAR\nEND:VCALENDAR\n", "calendar")
    inner = MIMEText(draw(texts), "plain", "utf-8")
    inner["Subject"] = "forwarded"
    return MIMEMessage(inner)


def tree(depth: int = 2) -> st.SearchStrategy[MIMEBase]:
    if depth == 0:
        return leaf()
    return st.one_of(leaf(), st.builds(
        _multipart, st.sampled_from(["mixed", "alternative", "related", "digest"]),
        st.lists(tree(depth - 1), min_size=1, max_size=4), boundaries))


# Boundaries as mail programs really write them, RFC 2046's limits included and passed:
# long, ending in a space, with quotes and punctuation.
boundaries = st.one_of(st.none(), st.text(
    alphabet="abcXYZ0123456789'()+_,-./:=? \"", min_size=1, max_size=100).filter(
        lambda b: b.strip() and not b.startswith(" ")))


def _multipart(subtype: str, children: list[MIMEBase], boundary: str | None = None
               ) -> MIMEMultipart:
    m = MIMEMultipart(subtype, boundary=boundary)
    for child in children:
        m.attach(child)
    return m


@settings(max_examples=150, deadline=None)
@given(tree())
def test_generated_mime_trees(message):
    message["From"] = "teacher@example.sch.uk"
    message["To"] = "parent@gmail.com"
    message["Subject"] = "generated"
    raw = message.as_bytes(policy=SMTP_POLICY)
    holds_the_rules(raw)
