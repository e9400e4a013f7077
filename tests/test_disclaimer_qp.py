"""The disclaimer in quoted-printable parts: only the encoded lines around it are made again.

The oracle is the whole part decoded, extended and encoded again (what the rewrite did before
the splice, and still does when a splice would not decode right): the spliced part must
decode to exactly the same text, keep every other encoded line as it was sent, and keep
RFC 2045's 76 columns where the sender did.
"""

from __future__ import annotations

import binascii
import quopri
import re
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from mailguard.mime.parts import displayed, scan
from mailguard.rewrite import disclaimer
from mailguard.rewrite.disclaimer import Disclaimer, apply, html_fragment

TEXT = ("Test Academy Trust: this email is confidential and may be monitored.\n"
        "If it reached you in error, please delete it.")


def message(body: bytes, subtype: str, charset: str) -> bytes:
    return (b"From: teacher@example.sch.uk\r\nTo: parent@gmail.com\r\nSubject: trip\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
            b"--b\r\nContent-Type: text/" + subtype.encode() + b"; charset=" + charset.encode()
            + b"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body
            + b"\r\n--b--\r\n")


def body_of(raw: bytes) -> bytes:
    part = displayed(scan(raw))[0]
    return raw[part.body_start:part.end]


def rewritten(raw: bytes, position: str, splice: bool) -> bytes:
    d = Disclaimer(TEXT, html_fragment(TEXT), position)
    if splice:
        return apply(raw, d)
    with mock.patch.object(disclaimer, "_qp_spliced", return_value=None):
        return apply(raw, d)


ENCODERS = {
    "binascii": lambda data: binascii.b2a_qp(data, istext=True),
    "quopri": lambda data: quopri.encodestring(data),
    # Encoders mail really meets: no wrapping at all, and line breaks written as =0D=0A.
    "unwrapped": lambda data: data.replace(b"=", b"=3D"),
    # Lower-case hex, which decoders read and binascii never writes: a part encoded again
    # whole would not keep these bytes.
    "lower-case": lambda data: re.sub(rb"=([0-9A-F]{2})", lambda m: b"=" + m[1].lower(),
                                      binascii.b2a_qp(data, istext=True)),
    "escaped breaks": lambda data: binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=False),
}
WELL_FORMED = ("binascii", "quopri", "lower-case")

words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                min_size=1, max_size=120)


@st.composite
def letters(draw: st.DrawFn) -> tuple[str, bool]:
    """A letter in paragraphs, with or without a quoted thread under it."""
    paragraphs = draw(st.lists(words, min_size=1, max_size=40))
    thread = draw(st.booleans())
    text = "\r\n\r\n".join(paragraphs)
    if thread:
        text += ("\r\n\r\nOn Tue, 1 Dec 2026, Parent wrote:\r\n"
                 + "\r\n".join("> " + p for p in paragraphs[:10]))
    return text + draw(st.sampled_from(["", "\r\n", "   \r\n"])), thread


@settings(max_examples=300, deadline=None)
@given(letters(), st.sampled_from(sorted(ENCODERS)), st.sampled_from(["plain", "html"]),
       st.sampled_from(["utf-8", "iso-8859-1"]), st.sampled_from(["quote", "bottom"]))
def test_the_splice_decodes_as_the_whole_part_encoded_again(letter, encoder, subtype, charset,
                                                            position):
    text, _ = letter
    if subtype == "html":
        text = "<html><body>" + "".join(f"<p class=\"x\">{p}</p>\r\n" for p in text.split(
            "\r\n\r\n")) + "</body></html>"
    data = text.encode(charset, "ignore")
    raw = message(ENCODERS[encoder](data), subtype, charset)
    spliced, whole = rewritten(raw, position, True), rewritten(raw, position, False)
    assert binascii.a2b_qp(body_of(spliced)) == binascii.a2b_qp(body_of(whole))
    new, old = body_of(spliced), body_of(raw)
    part_new, part_old = displayed(scan(spliced))[0], displayed(scan(raw))[0]
    assert spliced[part_new.start:part_new.body_start] == raw[part_old.start:part_old.body_start]
    if encoder in WELL_FORMED:
        # 76 columns, or the sender's own longest line (binascii writes 77 before "=20")
        assert max(map(len, new.splitlines())) <= max([76, *map(len, old.splitlines())])
        if len(old) > 4000 and encoder == "lower-case":   # most kept as sent: spliced
            kept = len(_common_prefix(new, old)) + len(_common_prefix(new[::-1], old[::-1]))
            assert kept > 0.8 * len(old)


def _common_prefix(a: bytes, b: bytes) -> bytes:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def test_a_long_letter_keeps_its_encoded_lines_and_gets_the_disclaimer_once():
    paragraph = ("Dear parents, the Year 6 trip leaves at nine; please bring a packed lunch "
                 "costing no more than £5. Children should wear school uniform. ") * 3
    text = "\r\n\r\n".join([paragraph] * 200)
    old = ENCODERS["lower-case"](text.encode())
    raw = message(old, "plain", "utf-8")
    out = rewritten(raw, "bottom", True)
    new = body_of(out)
    decoded = binascii.a2b_qp(new).decode()
    assert decoded.count("this email is confidential and may be monitored") == 1
    assert decoded.startswith(text.rstrip())
    # Everything but the last few encoded lines is the sender's own bytes.
    assert new.startswith(old[:old.rfind(b"\r\n", 0, len(old) - 400)])


def test_line_breaks_written_as_escapes_still_get_a_correct_disclaimer():
    """An encoder that writes every line break as =0D=0A gives one 'line' of 30 KB: the
    splice cannot keep lines it cannot find, and the part is encoded again whole."""
    text = "\r\n".join(f"Line {i} of the trip letter, with = signs." for i in range(700))
    raw = message(binascii.b2a_qp(text.encode(), istext=False), "plain", "utf-8")
    out = rewritten(raw, "bottom", True)
    decoded = binascii.a2b_qp(body_of(out)).decode()
    assert decoded.startswith(text)
    assert decoded.count("this email is confidential and may be monitored") == 1
    assert decoded == binascii.a2b_qp(body_of(rewritten(raw, "bottom", False))).decode()
