"""The MIME tree as byte ranges of the raw message, so a rewrite can splice one part's bytes
and leave every other byte of the message exactly as it came.

Headers are read with compat32 (nothing normalised); boundaries are found in the bytes.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from email.message import Message

from mailguard import mime

MAX_DEPTH = 40


@dataclass
class Part:
    """One MIME entity: raw[start:body_start] is its header block, raw[body_start:end] its body."""

    start: int
    body_start: int
    end: int
    headers: Message
    children: list[Part] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @property
    def charset(self) -> str | None:
        value = self.headers.get_param("charset")
        return str(value).strip().lower() if isinstance(value, str) and value.strip() else None

    @property
    def transfer_encoding(self) -> str:
        return str(self.headers.get("Content-Transfer-Encoding", "7bit")).strip().lower()

    @property
    def is_attachment(self) -> bool:
        disposition = str(self.headers.get("Content-Disposition", "")).split(";")[0].strip()
        return disposition.lower() == "attachment"

    def walk(self) -> list[Part]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


def _delimiters(raw: bytes, boundary: bytes, start: int, end: int) -> list[tuple[int, int, bool]]:
    """(delimiter start incl. its leading line break, start of the next line, is-close) each."""
    line = rb"--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|\Z)"
    found = []
    # At the very start of the body the delimiter has no line break of its own before it.
    first = re.compile(line).match(raw, start, end)
    if first:
        found.append((first.start(), first.end(), first.group(1) is not None))
        if first.group(1):
            return found
    pattern = re.compile(rb"\r?\n" + line)
    pos = first.end() if first else start
    while pos < end:
        m = pattern.search(raw, pos, end)
        if m is None:
            break
        found.append((m.start(), m.end(), m.group(1) is not None))
        if m.group(1):
            break
        pos = m.end()
    return found


def _scan(raw: bytes, start: int, end: int, depth: int) -> Part:
    head_end = start + mime.header_end(raw[start:end])
    headers = mime.parse_headers(raw[start:head_end])
    part = Part(start, head_end, end, headers)
    if part.maintype != "multipart" or depth >= MAX_DEPTH:
        return part
    boundary = headers.get_param("boundary")
    if not isinstance(boundary, str):
        return part
    delims = _delimiters(raw, boundary.encode("utf-8", "surrogateescape"), head_end, end)
    if delims and not delims[-1][2]:
        delims.append((end, end, True))  # no closing delimiter: the last part runs to the end
    for (_, child_start, close), (next_delim, _, _) in itertools.pairwise(delims):
        if close:
            break
        part.children.append(_scan(raw, child_start, next_delim, depth + 1))
    return part


def scan(raw: bytes) -> Part:
    """The part tree of a whole message. Malformed structure yields fewer parts, never an error."""
    return _scan(raw, 0, len(raw), 0)


def structure_problem(tree: Part) -> str | None:
    """Why the MIME structure cannot be walked reliably (so body checks would be blind)."""
    for part in tree.walk():
        if part.maintype != "multipart":
            continue
        if not isinstance(part.headers.get_param("boundary"), str):
            return f"broken MIME structure ({part.content_type} without a boundary)"
        if not part.children:
            return f"broken MIME structure ({part.content_type} with no parts found)"
    return None
