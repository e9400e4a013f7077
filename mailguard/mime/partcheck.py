"""Does the byte-range reading of a message (parts.scan) agree with the standard library's?

A rewrite splices new bytes into the ranges `parts` found. Where those ranges are not the
parts a mail program will see, the splice would change an attachment or another part's
headers, so the rewrite checks first and leaves such a message byte for byte as it came.
The full comparison parses the message a second time, so it runs only for the shapes where
the two readings can differ (`unusual`); the test suite runs it on every message it has.
"""

from __future__ import annotations

import email
import re
from email.message import Message
from email.policy import compat32

from mailguard.mime.parts import Part, boundary_of

# RFC 2046 section 5.1.1: 1 to 70 of these, not ending in a space.
_BCHARS = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_BARE_CR = re.compile(rb"\r(?!\n)")   # one pass; two counts took twice as long


def unusual(raw: bytes, tree: Part) -> str | None:
    """Why this message's shape is one where readings are known to differ, or None.

    Cheap: a walk of the tree already made and one search at C speed."""
    multiparts = [part for part in tree.walk() if part.maintype == "multipart"]
    if not multiparts:
        return None   # one part: no boundaries to read otherwise
    if _BARE_CR.search(raw):
        return "bare CR line breaks"
    for part in multiparts:
        boundary = boundary_of(part)
        if boundary is None or not _BCHARS.fullmatch(boundary):
            return "a boundary outside RFC 2046's rules"
        if part.content_type == "multipart/digest":
            return "a multipart/digest"
        if not part.closed:
            return "a multipart without its closing boundary"
        if any(child.body_start == child.start for child in part.children):
            return "a part with no header block"
    return None


def disagreement(raw: bytes, tree: Part) -> str | None:
    """Where the standard library reads `raw` differently from `tree`, or None."""
    theirs = email.message_from_bytes(raw, policy=compat32)
    return _compare(raw, tree, theirs, "message")


def _compare(raw: bytes, ours: Part, theirs: Message, where: str) -> str | None:
    mine, their_type = ours.content_type, theirs.get_content_type()
    if mine != their_type:
        return f"{where}: content type {mine} here, {their_type} in the standard library"
    if ours.maintype == "message" or their_type.startswith("message/"):
        return None   # an attached message is one part here; its insides are its own
    if theirs.is_multipart():
        kids = theirs.get_payload()
        assert isinstance(kids, list)
        if len(kids) != len(ours.children):
            return (f"{where}: {len(ours.children)} parts here, {len(kids)} in the standard "
                    "library")
        for n, (a, b) in enumerate(zip(ours.children, kids, strict=True), 1):
            if problem := _compare(raw, a, b, f"{where} part {n}"):
                return problem
        return None
    if ours.children:
        return f"{where}: a multipart here, one part in the standard library"
    payload = theirs._payload   # as parsed: get_payload() would decode 8-bit text by charset
    body = payload.encode("ascii", "surrogateescape") if isinstance(payload, str) else b""
    if body != raw[ours.body_start:ours.end]:
        return f"{where}: its body has other bytes in the standard library"
    return None
