"""Parsing that keeps bytes the truth: header block bounds, compat32 parses, address views."""

from __future__ import annotations

import email.utils
from email import errors as email_errors
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32

_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_PARSER = BytesParser(policy=compat32)


def header_end(raw: bytes) -> int:
    """Offset where the body starts (after the blank line), or len(raw) for headers only."""
    if raw.startswith((b"\r\n", b"\n")):
        return 0
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n")
    candidates = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(candidates) if candidates else len(raw)


def parse_headers(block: bytes) -> Message:
    return _HEADER_PARSER.parsebytes(block)


def parse_message(raw: bytes) -> Message:
    return _PARSER.parsebytes(raw)


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


def addresses(headers: Message, name: str) -> list[str]:
    """Bare addresses in an address header (all occurrences), lower-cased domain kept as sent."""
    values = [str(v) for v in headers.get_all(name, [])]
    return [addr for _, addr in email.utils.getaddresses(values) if addr]
