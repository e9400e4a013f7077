"""Header blocks as raw fields, so one field can be replaced and the rest left byte for byte."""

from __future__ import annotations

import re

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


def replace(block: bytes, name: bytes, new_fields: list[bytes]) -> bytes:
    """Every `name` field removed; `new_fields` stand where the first one stood (or at the end)."""
    items, blank = split_block(block)
    out: list[bytes] = []
    placed = False
    for item in items:
        if name_of(item) == name.lower():
            if not placed:
                out.extend(new_fields)
                placed = True
            continue
        out.append(item)
    if not placed:
        out.extend(new_fields)
    return b"".join(out) + blank
