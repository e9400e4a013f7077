"""Parsing that keeps bytes the truth: header block bounds, compat32 parses, address views."""

from __future__ import annotations

import contextlib
import email.utils
from email import errors as email_errors
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

_HEADER_PARSER = BytesHeaderParser(policy=compat32)


def header_end(raw: bytes, start: int = 0, end: int | None = None) -> int:
    """Offset where the body starts (after the blank line) in raw[start:end], or `end` when
    there is no body. Works in place: no copy of the part."""
    end = len(raw) if end is None else end
    if raw.startswith(b"\r\n", start, end):   # no headers: the blank line is not the body's
        return start + 2
    if raw.startswith(b"\n", start, end):
        return start + 1
    crlf = raw.find(b"\r\n\r\n", start, end)
    # An LF-only blank line counts only if it comes first; never scan the body for one.
    lf = raw.find(b"\n\n", start, crlf + 2 if crlf >= 0 else end)
    if lf >= 0:
        return lf + 2
    return crlf + 4 if crlf >= 0 else end


def parse_headers(block: bytes) -> Message:
    return _HEADER_PARSER.parsebytes(block)


def header_problem(headers: Message, block: bytes) -> str | None:
    """Why a header block cannot be trusted to describe the message, or None when it can."""
    if not block.strip():
        return "the message has no header block"
    for defect in headers.defects:
        if isinstance(defect, email_errors.MissingHeaderBodySeparatorDefect):
            return "a line in the header block is not a header"
    if not headers.keys():
        return "the message has no headers"
    return None


def address_pairs(headers: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs in an address header, all occurrences, as sent."""
    values = [str(v) for v in headers.get_all(name, [])]
    return [(n, a) for n, a in email.utils.getaddresses(values) if a]


def addresses(headers: Message, name: str) -> list[str]:
    """Bare addresses in an address header (all occurrences), as sent."""
    return [a for _, a in address_pairs(headers, name)]


def decoded(headers: Message, name: str) -> str:
    """A header's text as people read it: RFC 2047 encoded words decoded (Outlook encodes any
    subject with an accent), folding undone; undecodable words are left as sent."""
    value = headers.get(name)
    if value is None:
        return ""
    text = str(value)
    if "=?" in text:
        with contextlib.suppress(ValueError, LookupError, UnicodeError):
            text = str(make_header(decode_header(text)))
    return " ".join(text.split())
