"""Reading a header block with bytes kept the truth: its bounds and raw fields, compat32 parses,
address views. The MIME tree (parts), text views and quotes are this package's modules."""

from __future__ import annotations

import contextlib
import email.utils
import re
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


_NAME = re.compile(rb"[^\s:]+[ \t]*:")


def fields(text: bytes) -> list[bytes]:
    """Header lines grouped into fields, each with its continuation lines and line break.

    A line that is not a header (no name and colon) stays with the field before it.
    """
    out: list[bytes] = []
    pos, size = 0, len(text)
    while pos < size:
        nl = text.find(b"\n", pos)
        end = size if nl < 0 else nl + 1
        while end < size and text[end:end + 1] in (b" ", b"\t"):  # continuation lines
            nl = text.find(b"\n", end)
            end = size if nl < 0 else nl + 1
        if out and not _NAME.match(text, pos, end):
            out[-1] += text[pos:end]
        else:
            out.append(text[pos:end])
        pos = end
    return out


def split_block(block: bytes) -> tuple[list[bytes], bytes]:
    """A header block's fields, and the blank line ending it (b"" for a message with no body)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        if block.endswith(sep):
            half = len(sep) // 2
            return fields(block[:-half]), block[-half:]
    return fields(block), b""


def name_of(field: bytes) -> bytes:
    return field.partition(b":")[0].strip().lower()


def linesep(raw: bytes) -> bytes:
    head = raw[:4096]
    return b"\r\n" if b"\r\n" in head or b"\n" not in head else b"\n"
