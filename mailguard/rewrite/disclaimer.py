"""Adds the trust's disclaimer to every displayed body, splicing only the parts it changes.

Each changed part keeps its charset (or becomes UTF-8 when the text cannot be written in it)
and its transfer encoding (7bit becomes quoted-printable if the text is no longer ASCII).
Attachments, forwarded messages and calendar parts are never touched; signed or encrypted
mail is wrapped whole, never altered inside. After Mailman's decorate handler.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import uuid
from dataclasses import dataclass

from mailguard import mime
from mailguard.mime import quotes
from mailguard.mime.parts import (
    SIGNED_TYPES,
    Part,
    boundary_of,
    codec_of,
    decode_body,
    displayed,
    gzip64,
    scan,
)
from mailguard.rewrite import headers, splice

INLINE_PGP = re.compile(rb"^-----BEGIN PGP (?:SIGNED )?MESSAGE-----", re.M)

HTML_STYLE = ("margin-top:16px;padding-top:8px;border-top:1px solid #cccccc;"
              "font-family:Arial,Helvetica,sans-serif;font-size:11px;line-height:1.4;color:#555555")


@dataclass(frozen=True)
class Disclaimer:
    text: str
    html: str
    position: str = "quote"  # "quote": under the newest text, above the thread; "bottom"

    @property
    def marker(self) -> str:
        return normalise(self.text)[:60]

    @property
    def marker_word(self) -> str:
        """The marker's longest word: if a body lacks it, it cannot hold the disclaimer."""
        return max(self.marker.split() or [""], key=len)


def holds(text: str, d: Disclaimer) -> bool:
    """True when `text` already carries the disclaimer (quoted, re-wrapped or in HTML)."""
    if not d.marker or d.marker_word not in text.lower():
        return False  # the cheap test settles nearly every message
    return d.marker in normalise(text)


def normalise(text: str) -> str:
    """Text for the once-only test: quote marks, tags and spacing do not matter."""
    text = re.sub(r"(?m)^[ \t]*(?:>[ \t]?)+", "", text)
    return " ".join(html.unescape(quotes.TAG.sub(" ", text)).split()).lower()


def html_fragment(text: str) -> str:
    """The HTML version of a plain disclaimer: escaped, paragraphs kept, styled inline."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    inner = "".join("<p style=\"margin:0 0 6px 0\">" + "<br>".join(
        html.escape(line) for line in p.splitlines()) + "</p>" for p in paragraphs)
    return f'<div class="mailguard-disclaimer" style="{HTML_STYLE}">{inner}</div>'


def is_signed(raw: bytes, tree: Part) -> bool:
    if tree.content_type in SIGNED_TYPES:
        return True
    return any(p.maintype == "text" and raw.find(b"-----BEGIN PGP ", p.body_start, p.end) >= 0
               and INLINE_PGP.search(raw, p.body_start, p.end) for p in displayed(tree))


def _encode(data: bytes, cte: str, eol: str) -> bytes:
    if cte == "base64":
        text = base64.b64encode(data).decode()
        return (eol.join(text[i:i + 76] for i in range(0, len(text), 76)) + eol).encode()
    if cte == "quoted-printable":
        return binascii.b2a_qp(data, istext=True)  # C; keeps the data's own line breaks
    if cte == "x-gzip64":
        return gzip64(data, eol)
    return data


CLOSE_ENOUGH = 160   # bytes of text either side of the cut that may be encoded again
Cut = tuple[int, int, str]   # (start, end, insertion): text[:start] + insertion + text[end:]


def _text_cut(text: str, block: str, position: str, eol: str, flowed: bool) -> Cut:
    """Where the plain disclaimer goes: under the newest text, a blank line either side."""
    lines = block.strip("\n").split("\n")
    if flowed:  # RFC 3676: no trailing spaces (soft breaks) and space-stuffing
        lines = [(" " + ln if ln.startswith((" ", ">", "From ")) else ln).rstrip() for ln in lines]
    addition = eol.join(lines)
    at = len(text)
    if position == "quote" and (found := quotes.text_thread_start(text)) is not None:
        at = found
    before = len(text[:at].rstrip())
    if not before:
        return 0, at, addition + eol + (eol if at < len(text) else "")
    return before, at, eol + eol + addition + (eol + eol if at < len(text) else eol)


def _html_cut(text: str, fragment: str, position: str, eol: str) -> Cut:
    fragment = fragment.replace("\r\n", "\n").replace("\n", eol)  # the body's own breaks
    at = quotes.html_thread_start(text) if position == "quote" else None
    if at is None:
        ends = list(quotes.BODY_END.finditer(text))
        at = ends[-1].start() if ends else len(text.rstrip())
    if text.rfind("<", 0, at) > text.rfind(">", 0, at):  # broken HTML: never inside a tag
        at = len(text)
    return at, at, fragment


def _qp_spliced(raw: bytes, lo: int, hi: int, size: int, kept: tuple[int, int], out: bytes
                ) -> bytes | None:
    """The quoted-printable body raw[lo:hi] with only the encoded lines around the cut made
    again, or None when that would not decode to `out` (the new text's bytes; the old body
    decoded to `size` bytes, of which `kept` are before and after the cut).

    binascii.b2a_qp encodes about 100 MB/s: re-encoding a 50 KB part for a few lines of
    disclaimer cost half a millisecond, and a realistic message has two such parts. Quoted-
    printable decodes line by line, so the encoded lines before and after the cut decode to
    the text before and after it: those are kept as they were sent, and only the lines the
    cut falls in are encoded again. Decoding costs a tenth of encoding, so the result is
    decoded and compared before it is used: an odd encoder cannot make mail go out wrong."""
    before, after = kept
    view = memoryview(raw)
    newline = raw.rfind(b"\n", lo, lo + before)    # a line start no later than the cut
    head = newline + 1 if newline >= 0 else lo
    newline = raw.find(b"\n", max(hi - after - 1, head), hi)   # and none earlier than its end
    tail = newline + 1 if newline >= 0 else hi
    kept_head = _decoded_length(view, lo, head, hi, size)
    kept_tail = size - _decoded_length(view, lo, tail, hi, size)
    # Escapes make the encoding longer than the text: those first guesses fall short of the
    # cut by about as many bytes as the part has escapes. Close in, decoding only the gap.
    while before - kept_head > CLOSE_ENOUGH:
        nearer = raw.rfind(b"\n", head, head + before - kept_head) + 1
        if nearer <= head:
            break
        kept_head += len(binascii.a2b_qp(view[head:nearer]))
        head = nearer
    while after - kept_tail > CLOSE_ENOUGH:
        nearer = raw.find(b"\n", max(head, tail - (after - kept_tail)) - 1, tail) + 1
        if not head < nearer < tail:
            break
        kept_tail += len(binascii.a2b_qp(view[nearer:tail]))
        tail = nearer
    if kept_head > before or kept_tail > after:
        return None
    middle = binascii.b2a_qp(out[kept_head:len(out) - kept_tail], istext=True)
    if tail < hi and not middle.endswith(b"\n"):
        middle += b"=\r\n" if raw.endswith(b"\r\n", lo, tail) else b"=\n"   # soft break
    body = b"".join((view[lo:head], middle, view[tail:hi]))
    return body if binascii.a2b_qp(body) == out else None


def _kept(text: str, cut: Cut, codec: str) -> tuple[int, int] | None:
    """The bytes of text before and after the cut, in its charset."""
    try:
        return (len(text[:cut[0]].encode(codec, "surrogateescape")),
                len(text[cut[1]:].encode(codec, "surrogateescape")))
    except UnicodeEncodeError:
        return None


def _decoded_length(view: memoryview, lo: int, line: int, hi: int, size: int) -> int:
    """What view[lo:line] decodes to, in bytes (`line` starts a line; view[lo:hi] decodes to
    `size`): the shorter side is decoded, the other is the rest."""
    if line - lo <= hi - line:
        return len(binascii.a2b_qp(view[lo:line]))
    return size - len(binascii.a2b_qp(view[line:hi]))


def _set_param(field: bytes, name: str, value: str) -> bytes:
    line = field.decode("latin-1")
    eol = line[len(line.rstrip("\r\n")):]
    body = line.rstrip("\r\n")
    pattern = re.compile(rf";\s*{name}\s*=\s*(\"[^\"]*\"|[^;\s]*)", re.I)
    if pattern.search(body):
        body = pattern.sub(f"; {name}={value}", body, count=1)
    else:
        body += f"; {name}={value}"
    return (body + eol).encode("latin-1")


def _rewrite_leaf(raw: bytes, part: Part, d: Disclaimer, eol: str) -> bytes | None:
    """The part's new bytes (headers + body), or None when it is left alone."""
    # Intermediate copies of the part are dropped as soon as the next exists: memory stays
    # within a few times the part, however large the message.
    cte = part.transfer_encoding
    codec = codec_of(part.charset)
    data = decode_body(memoryview(raw)[part.body_start:part.end], cte)
    if codec is None or data is None:
        return None
    text = str(data, codec, "surrogateescape" if codec != "utf-16" else "strict")
    size = len(data)
    del data
    if holds(text, d):
        return None  # already there: a reply quoting it, or a second pass
    if part.content_type == "text/html":
        cut = _html_cut(text, d.html, d.position, eol)
    else:
        flowed = str(part.headers.get_param("format", "")).lower() == "flowed"
        cut = _text_cut(text, d.text, d.position, eol, flowed)
    new = text[:cut[0]] + cut[2] + text[cut[1]:]
    kept = _kept(text, cut, codec) if cte == "quoted-printable" else None
    del text
    block = raw[part.start:part.body_start]
    recoded = False   # the text had to become UTF-8
    try:
        out = new.encode(codec, "surrogateescape")
    except UnicodeEncodeError:
        recoded = True
        out = new.encode("utf-8", "surrogateescape")
        field = next((f for f in mime.split_block(block)[0]
                      if mime.name_of(f) == b"content-type"), None)
        new_field = (_set_param(field, "charset", "utf-8") if field else
                     f"Content-Type: {part.content_type}; charset=utf-8{eol}".encode())
        block = headers.replace(block, b"content-type", [new_field])
    if cte in ("7bit", "") and not out.isascii():
        cte = "quoted-printable"
        block = headers.replace(block, b"content-transfer-encoding",
                                [f"Content-Transfer-Encoding: quoted-printable{eol}".encode()])
    if part.start == 0 and block != raw[:part.body_start] and b"mime-version" not in [
            mime.name_of(f) for f in mime.split_block(block)[0]]:
        block = headers.replace(block, b"mime-version", [f"MIME-Version: 1.0{eol}".encode()])
    del new
    body = None
    if kept is not None and cte == part.transfer_encoding and not recoded:
        body = _qp_spliced(raw, part.body_start, part.end, size, kept, out)
    if body is None:
        body = _encode(out, cte, eol)
    del out
    keep = len(body)
    while keep and body[keep - 1] in b"\r\n":
        keep -= 1
    # End as the original did: the delimiter owns the part's last line break.
    tail = eol.encode() if raw.endswith(eol.encode(), part.body_start, part.end) else b""
    return b"".join((block, memoryview(body)[:keep], tail))


def wrap(raw: bytes, tree: Part, d: Disclaimer) -> bytes:
    """New multipart/mixed: the untouched original entity, then the disclaimer as its own part."""
    eol = mime.linesep(raw).decode()
    items, _ = mime.split_block(raw[:tree.body_start])
    content = [f for f in items if mime.name_of(f).startswith(b"content-")]
    outer = [f for f in items if not mime.name_of(f).startswith(b"content-")]
    if not any(mime.name_of(f) == b"mime-version" for f in outer):
        outer.append(f"MIME-Version: 1.0{eol}".encode())
    boundary = f"mailguard-{uuid.uuid4().hex}"
    note = eol.join(d.text.strip("\n").split("\n")).encode("utf-8")
    return b"".join([
        *outer, f'Content-Type: multipart/mixed; boundary="{boundary}"{eol}{eol}'.encode(),
        f"--{boundary}{eol}".encode(), *content, eol.encode(), raw[tree.body_start:],
        f"{eol}--{boundary}{eol}".encode(),
        f"Content-Type: text/plain; charset=utf-8{eol}Content-Transfer-Encoding: 8bit{eol}"
        f"Content-Disposition: inline{eol}{eol}".encode(), note, eol.encode(),
        f"--{boundary}--{eol}".encode()])


def _add_part(raw: bytes, mixed: Part, d: Disclaimer, eol: str) -> bytes:
    """A multipart/mixed with no displayed body (only attachments) gets an inline text part."""
    boundary = boundary_of(mixed)
    if boundary is None or not mixed.closed or not mixed.children:
        return raw   # no closing delimiter to put the new part before
    # Its own closing delimiter: right after its last part, never a nested one's.
    close = raw.find(f"--{boundary}--".encode(), mixed.children[-1].end, mixed.end)
    if close < 0:
        return raw
    note = eol.join(d.text.strip("\n").split("\n")).encode("utf-8")
    part = (f"--{boundary}{eol}Content-Type: text/plain; charset=utf-8{eol}"
            f"Content-Transfer-Encoding: 8bit{eol}Content-Disposition: inline{eol}{eol}").encode()
    return splice(raw, [(close, close, part + note + eol.encode())])


def carries(raw: bytes, tree: Part, d: Disclaimer) -> bool:
    """True when any inline text part already holds this disclaimer (an added or wrapped one)."""
    for part in tree.walk():
        if part.maintype != "text" or part.is_attachment or part.children:
            continue
        data = decode_body(raw[part.body_start:part.end], part.transfer_encoding)
        codec = codec_of(part.charset)
        if data is not None and codec and holds(data.decode(codec, "replace"), d):
            return True
    return False


def apply(raw: bytes, d: Disclaimer, parsed: tuple[bytes, Part] | None = None) -> bytes:
    """The message with the disclaimer in every displayed body that lacks it.

    `parsed` is (bytes, their tree) from the checks: reused when it is these very bytes.
    """
    tree = parsed[1] if parsed is not None and parsed[0] is raw else scan(raw)
    eol = mime.linesep(raw).decode()
    if tree.maintype == "message":
        return raw  # message/partial and external-body: fragments of another message
    bodies = [] if is_signed(raw, tree) else displayed(tree)
    if not bodies:
        if carries(raw, tree, d):
            return raw
        if is_signed(raw, tree):
            return wrap(raw, tree, d)
        if tree.content_type in ("multipart/mixed", "multipart/digest"):
            return _add_part(raw, tree, d, eol)
        if tree.maintype in ("multipart", "text"):
            return raw  # nothing displayed to add to; an invite (text/calendar) stays an invite
        return wrap(raw, tree, d)
    edits = [(part.start, part.end, new) for part in bodies
             if (new := _rewrite_leaf(raw, part, d, eol)) is not None]
    return splice(raw, edits) if edits else raw
