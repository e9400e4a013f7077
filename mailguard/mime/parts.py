"""The MIME tree as byte ranges of the raw message, so a rewrite can splice one part's bytes
and leave every other byte of the message exactly as it came.

Headers are read with compat32 (nothing normalised); boundaries are found in the bytes.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import gzip
import itertools
import re
import zlib
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32
from functools import cached_property

from mailguard import mime

MAX_DEPTH = 40
SIGNED_TYPES = ("multipart/signed", "multipart/encrypted", "application/pkcs7-mime",
                "application/x-pkcs7-mime")


@dataclass
class Part:
    """One MIME entity: raw[start:body_start] is its header block, raw[body_start:end] its body."""

    start: int
    body_start: int
    end: int
    headers: Message
    children: list[Part] = field(default_factory=list)
    closed: bool = True   # a multipart whose closing delimiter was found

    @cached_property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    @cached_property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @cached_property
    def charset(self) -> str | None:
        value = self.headers.get_param("charset")
        return str(value).strip().lower() if isinstance(value, str) and value.strip() else None

    @cached_property
    def transfer_encoding(self) -> str:
        return str(self.headers.get("Content-Transfer-Encoding", "7bit")).strip().lower()

    @cached_property
    def is_attachment(self) -> bool:
        disposition = str(self.headers.get("Content-Disposition", "")).split(";")[0].strip()
        return disposition.lower() == "attachment"

    def walk(self) -> list[Part]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


def _delimiters(raw: bytes, boundary: bytes, start: int, end: int) -> list[tuple[int, int, bool]]:
    """(delimiter start incl. its leading line break, start of the next line, is-close) each.

    A delimiter is "--boundary" at the start of a line (the body's first line, or after a line
    break, which belongs to the delimiter), then "--" for the last, spaces, and a line break.
    Found with bytes.find: a regex with an optional leading CR has no literal to skip ahead by.
    """
    marker = b"--" + boundary
    found: list[tuple[int, int, bool]] = []
    pos = start
    while True:
        at = raw.find(marker, pos, end)
        if at < 0:
            return found
        pos = at + 1
        if at == start:
            begin = at
        elif raw[at - 1:at] == b"\n":
            begin = at - 2 if raw[at - 2:at] == b"\r\n" and at - 2 >= start else at - 1
        else:
            continue
        m = _DELIMITER_TAIL.match(raw, at + len(marker), end)
        if m is None:
            continue
        close = m.group(1) is not None
        found.append((begin, m.end(), close))
        if close:
            return found
        pos = m.end()


_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(?:\r?\n|\Z)")


def part_headers(block: bytes) -> Message:
    """A part's header block as compat32 would hold it, without its line-by-line feed parser
    (which costs several times more, for the three fields a part's shape depends on)."""
    msg = Message()
    for item in mime.fields(block.rstrip(b"\r\n") + b"\n" if block.strip() else b""):
        if b":" not in item:
            continue
        lines = item.decode("ascii", "surrogateescape").splitlines(keepends=True)
        if ":" not in lines[0]:   # splitlines also breaks at \f, \v, \x1c …: not a field
            continue
        name, value = compat32.header_source_parse(lines)
        msg.set_raw(name, value)
    return msg


def boundary_of(part: Part) -> str | None:
    """The boundary as the standard library's parser uses it (trailing spaces dropped)."""
    boundary = part.headers.get_boundary()
    return boundary if isinstance(boundary, str) and boundary else None


# A line that is neither a field ("Name:") nor a folded continuation: as in the standard
# library's parser, the part's body starts there even without a blank line before it.
_NOT_A_FIELD = re.compile(rb"^(?!From |[\x21-\x39\x3b-\x7e]*:|[ \t])", re.M)


def _body_start(raw: bytes, start: int, end: int) -> int:
    head_end = mime.header_end(raw, start, end)
    stray = _NOT_A_FIELD.search(raw, start, head_end)
    if stray is None or not raw[stray.start():head_end].strip():
        return head_end   # every line up to the blank line is a field
    return stray.start()


def _scan(raw: bytes, start: int, end: int, depth: int, digest: bool = False) -> Part:
    head_end = _body_start(raw, start, end)
    headers = part_headers(raw[start:head_end])
    if digest:   # RFC 2046 5.1.5: a digest's parts are messages unless they say otherwise
        headers.set_default_type("message/rfc822")
    part = Part(start, head_end, end, headers)
    if part.maintype != "multipart" or depth >= MAX_DEPTH:
        return part
    boundary = boundary_of(part)
    if boundary is None:
        return part
    delims = _delimiters(raw, boundary.encode("utf-8", "surrogateescape"), head_end, end)
    if delims and not delims[-1][2]:
        # No closing delimiter: the last part runs to the end, less its last line break, as
        # the standard library reads it.
        part.closed = False
        last = end - (2 if raw.endswith(b"\r\n", delims[-1][1], end) else
                      1 if raw.endswith(b"\n", delims[-1][1], end) else 0)
        delims.append((max(last, delims[-1][1]), end, True))
    for (_, child_start, close), (next_delim, _, _) in itertools.pairwise(delims):
        if close:
            break
        part.children.append(_scan(raw, child_start, next_delim, depth + 1,
                                   part.content_type == "multipart/digest"))
    return part


def scan(raw: bytes) -> Part:
    """The part tree of a whole message. Malformed structure yields fewer parts, never an error."""
    return _scan(raw, 0, len(raw), 0)


def structure_problem(tree: Part) -> str | None:
    """Why the MIME structure cannot be walked reliably (so body checks would be blind)."""
    for part in tree.walk():
        if part.maintype != "multipart":
            continue
        if boundary_of(part) is None:
            return f"broken MIME structure ({part.content_type} without a boundary)"
        if not part.children:
            return f"broken MIME structure ({part.content_type} with no parts found)"
    return None


def displayed(part: Part) -> list[Part]:
    """The bodies a reader sees: never attachments, forwarded messages or calendar parts."""
    ctype = part.content_type
    if part.is_attachment or ctype in ("text/calendar", "message/rfc822") or ctype in SIGNED_TYPES:
        return []
    if ctype in ("text/plain", "text/html"):
        return [part]
    if part.maintype != "multipart" or not part.children:
        return []
    if ctype == "multipart/alternative":
        return [b for child in part.children for b in displayed(child)]
    return displayed(part.children[0])  # mixed, related, report …: the first body


def codec_of(charset: str | None) -> str | None:
    try:
        return codecs.lookup(charset or "us-ascii").name
    except LookupError:
        return None


def decode_body(body: bytes | memoryview, cte: str) -> bytes | memoryview | None:
    """A part's body decoded; None for an encoding we do not know."""
    if cte == "base64":
        # a2b_base64 skips line breaks and reads the message in place, so the decoded body
        # is the only copy (a 25 MB attachment must not cost three times that); bodies that
        # lack their padding are padded in a copy.
        try:
            return binascii.a2b_base64(body)
        except binascii.Error:
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", body) + b"==")
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    if cte in ("x-uuencode", "uuencode", "x-uue"):
        return uudecode(bytes(body))
    if cte == "x-gzip64":
        return gunzip64(body)
    if cte in ("7bit", "8bit", "binary", ""):
        return body
    return None


GZIP64_LIMIT = 64 * 1024 * 1024   # what one gzip64 part may unpack to: a bomb stops here


def gunzip64(body: bytes | memoryview) -> bytes | None:
    """x-gzip64 (gzip, then base64), which a few mail programs still write; None when it is
    broken or unpacks past GZIP64_LIMIT, so the part counts as unreadable, not as empty."""
    try:
        packed = binascii.a2b_base64(body)
        unpacker = zlib.decompressobj(wbits=31)
        out = unpacker.decompress(packed, GZIP64_LIMIT)
    except (binascii.Error, zlib.error):
        return None
    return None if unpacker.unconsumed_tail or not unpacker.eof else out


def gzip64(data: bytes, eol: str) -> bytes:
    """The x-gzip64 encoding of `data`, in 76-character lines."""
    text = base64.b64encode(gzip.compress(data, mtime=0)).decode()
    return (eol.join(text[i:i + 76] for i in range(0, len(text), 76)) + eol).encode()


def uudecode(body: bytes) -> bytes | None:
    """The old uuencode ("begin 644 name" … "end"), which some mailers still send; lines
    from sloppy encoders are cut to the length their first byte gives, as the stdlib does."""
    lines = iter(body.splitlines())
    if not any(line.startswith(b"begin ") for line in lines):
        return b"" if not body.strip() else None
    out = bytearray()
    for line in lines:
        if line.strip() == b"end":
            break
        if not line.strip():
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            try:
                out += binascii.a2b_uu(line[:(((line[0] - 32) & 63) * 4 + 5) // 3])
            except binascii.Error:
                return None
    return bytes(out)


def text_of(raw: bytes, part: Part, as_shown: bool = False) -> str | None:
    """A text part's words as a string, or None when its encoding or charset is unknown;
    with `as_shown`, such a part is read as a mail program shows it instead (an unknown
    transfer encoding as written, an unknown charset as UTF-8), so the checks that read
    language never wave through words a label hid."""
    codec = codec_of(part.charset)
    body = memoryview(raw)[part.body_start:part.end]
    data = decode_body(body, part.transfer_encoding)
    if as_shown:
        return str(body if data is None else data, codec or "utf-8", "replace")
    if codec is None or data is None:
        return None
    return str(data, codec, "replace")
