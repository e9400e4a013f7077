"""Header rewrites for bulk mail: take exposed addresses out of To/Cc, or address a copy to one
recipient. The envelope is never touched, so each recipient still gets exactly one copy.
"""

from __future__ import annotations

from email.utils import formataddr, getaddresses

from mailguard import mime
from mailguard.rewrite import headers, splice

MAX_LINE = 78


def _name(raw_name: str) -> str:
    """A display name as text: 8-bit bytes kept by the parser as surrogates become UTF-8."""
    return raw_name.encode("ascii", "surrogateescape").decode("utf-8", "replace")


def _field(name: str, pairs: list[tuple[str, str]], eol: str) -> bytes:
    """One address field, folded before it passes 78 characters."""
    items = [formataddr((_name(n), a), charset="utf-8") for n, a in pairs]
    line, lines = f"{name}: ", []
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + len(piece) > MAX_LINE and line.strip() != f"{name}:":
            lines.append(line.rstrip())
            line = " "
        line += piece + " "
    lines.append(line.rstrip())
    return (eol.join(lines) + eol).encode("utf-8")


def _pairs(block: bytes, field: str) -> list[tuple[str, str]]:
    parsed = mime.parse_headers(block)
    return [(n, a) for n, a in getaddresses([str(v) for v in parsed.get_all(field, [])]) if a]


def hide(raw: bytes, hidden: frozenset[str], to: str, note: str) -> bytes:
    """To/Cc without the `hidden` addresses; To falls back to `to` when nobody is left in it."""
    end = mime.header_end(raw)
    block, eol = raw[:end], mime.linesep(raw).decode()
    pairs = {f: _pairs(block, f) for f in ("To", "Cc")}
    kept = {f: [(n, a) for n, a in pairs[f] if a.lower() not in hidden] for f in ("To", "Cc")}
    to_field = _field("To", kept["To"], eol) if kept["To"] else f"To: {to}{eol}".encode()
    block = headers.replace(block, b"to", [to_field])
    block = headers.replace(block, b"cc", [_field("Cc", kept["Cc"], eol)] if kept["Cc"] else [])
    block = headers.replace(block, b"x-mailguard-bcc", [f"X-Mailguard-Bcc: {note}{eol}".encode()])
    return splice(raw, [(0, end, block)])


def only_to(raw: bytes, recipient: str) -> bytes:
    """A copy addressed to one recipient alone: To is that recipient, Cc is gone."""
    end = mime.header_end(raw)
    block, eol = raw[:end], mime.linesep(raw).decode()
    named = {a.lower(): n for f in ("To", "Cc") for n, a in _pairs(block, f)}
    block = headers.replace(block, b"to", [_field("To", [(named.get(recipient.lower(), ""),
                                                           recipient)], eol)])
    block = headers.replace(block, b"cc", [])
    return splice(raw, [(0, end, block)])
