"""A held message made safe to look at: its headers, its body as sanitised HTML or as text,
its attachments with what inspection found, and the listed words in context.

The HTML body is cleaned with nh3 (no script, no forms, no event handlers, no CSS that can
fetch) and is shown in a sandboxed frame whose own Content-Security-Policy forbids loading
anything remote until the reviewer asks; both would have to fail for a sender's page to run.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import nh3

from mailguard import mime
from mailguard.files import filetype, report
from mailguard.files.limits import Limits
from mailguard.mime.parts import Part, displayed, scan, text_of
from mailguard.mime.views import html_to_text
from mailguard.model import Client, Envelope, Mail
from mailguard.text.matcher import readable

MAX_SHOWN = 2 * 1024 * 1024   # of a body: a 40 MB HTML part is shown cut, with a note
HEADERS_SHOWN = ("From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
                 "User-Agent", "X-Mailer")
STYLES = {"color", "background-color", "font-family", "font-size", "font-style",
          "font-weight", "text-align", "text-decoration", "line-height", "margin",
          "margin-left", "margin-right", "margin-top", "margin-bottom", "padding",
          "padding-left", "padding-right", "padding-top", "padding-bottom", "border",
          "border-collapse", "border-color", "border-style", "border-width", "width",
          "height", "vertical-align", "white-space"}
ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
for _tag in nh3.ALLOWED_TAGS:
    ATTRIBUTES.setdefault(_tag, set()).update({"style", "title", "dir", "lang"})
REMOTE = re.compile(r"(?i)^\s*(?:https?:)?//")
# Pictures sent inside the message (cid:), shown in place as data: URIs when libmagic agrees
# they are one of these (never SVG), within these sizes.
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"}
MAX_INLINE, MAX_INLINE_TOTAL = 2 * 1024 * 1024, 10 * 1024 * 1024


@dataclass
class Body:
    kind: str            # "html", "text" or "none"
    content: str         # sanitised HTML, or text
    cut: bool = False    # longer than MAX_SHOWN: only the start is shown
    note: str = ""       # why the body is shown the way it is
    remote: int = 0      # remote images held back
    links: int = 0       # links held back


@dataclass
class Attachment:
    index: int
    name: str
    size: int
    declared: str
    detected: str
    encrypted: str
    problems: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)


def headers(raw: bytes) -> list[tuple[str, str]]:
    block = mime.parse_headers(raw[: mime.header_end(raw)])
    return [(name, mime.decoded(block, name)) for name in HEADERS_SHOWN if block.get(name)]


def _bodies(tree: Part) -> tuple[Part | None, Part | None]:
    shown = displayed(tree)
    return (next((p for p in shown if p.content_type == "text/html"), None),
            next((p for p in shown if p.content_type == "text/plain"), None))


def inline_images(raw: bytes, tree: Part) -> dict[str, str]:
    """{content id: data URI} for the pictures the message carries for its own HTML."""
    found: dict[str, str] = {}
    total = 0
    for part in tree.walk():
        cid = str(part.headers.get("Content-ID", "")).strip().strip("<>").lower()
        if not cid or part.children or part.end - part.body_start > MAX_INLINE * 2:
            continue
        data = report.body_bytes(raw, part)
        if not data or len(data) > MAX_INLINE or total + len(data) > MAX_INLINE_TOTAL:
            continue
        kind = filetype.sniff(data)
        if kind in INLINE_TYPES:
            found[cid] = f"data:{kind};base64,{base64.b64encode(data).decode()}"
            total += len(data)
    return found


def sanitise(source: str, *, remote: bool, links: bool, images: dict[str, str] | None = None,
             ) -> tuple[str, int, int]:
    """Clean HTML, with remote images and links removed unless allowed; with the counts of
    those held back, so the reviewer knows there is something to allow. Pictures carried in
    the message itself (`images`, by content id) are shown in place."""
    held = {"remote": 0, "links": 0}

    def keep(tag: str, attr: str, value: str) -> str | None:
        if tag == "img" and attr == "src":
            if value.lower().startswith("cid:"):
                return (images or {}).get(value[4:].strip().strip("<>").lower())
            if value.lower().startswith("data:image/"):
                return value
            if REMOTE.match(value) and remote:
                return value
            held["remote"] += bool(REMOTE.match(value))
            return None
        if tag == "a" and attr == "href":
            if not re.match(r"(?i)^\s*(https?:|mailto:)", value):
                return None
            if links:
                return value
            held["links"] += 1
            return None
        return value

    cleaned = nh3.clean(source, tags=nh3.ALLOWED_TAGS, attributes=ATTRIBUTES,
                        clean_content_tags={"script", "style", "title", "head", "noscript"},
                        url_schemes={"http", "https", "mailto", "data", "cid"},
                        attribute_filter=keep, filter_style_properties=STYLES,
                        link_rel="noopener noreferrer nofollow")
    return cleaned, held["remote"], held["links"]


def body(raw: bytes, *, prefer: str = "html", remote: bool = False, links: bool = False) -> Body:
    """The body a reader of the message would see, made safe; text when HTML cannot be read."""
    tree = scan(raw)
    html_part, text_part = _bodies(tree)
    if prefer == "html" and html_part is not None:
        source = text_of(raw, html_part)
        if source is not None:
            cut = len(source) > MAX_SHOWN
            images = inline_images(raw, tree) if "cid:" in source.lower() else {}
            cleaned, n_remote, n_links = sanitise(source[:MAX_SHOWN], remote=remote, links=links,
                                                  images=images)
            return Body("html", cleaned, cut, remote=n_remote, links=n_links)
    part = text_part or html_part
    if part is None:
        return Body("none", "", note="the message has no body a reader would see "
                                     "(only attachments, or an encrypted or signed whole)")
    text = text_of(raw, part)
    if text is None:
        data = raw[part.body_start:part.end]
        return Body("text", data[:MAX_SHOWN].decode("latin-1"), len(data) > MAX_SHOWN,
                    note=f"its charset ({part.charset}) or encoding ({part.transfer_encoding}) "
                         "is unknown: shown as the bytes came")
    if part is html_part:   # asked for text, or HTML that could not be cleaned: its words
        text = html_to_text(text)
    return Body("text", text[:MAX_SHOWN], len(text) > MAX_SHOWN)


def attachments(raw: bytes, limits: Limits) -> list[Attachment]:
    """Each attachment with what inspection found in it (type, encryption, problems)."""
    mail = Mail("VIEW", Envelope("", ()), Client(""), raw)
    files = report.inspect_mail(mail, limits).files
    parts = report.attachment_parts(mail.parts)
    out = []
    for i, (part, file) in enumerate(zip(parts, files, strict=False)):
        out.append(Attachment(
            index=i, name=file.name, size=file.size, declared=part.content_type,
            detected=f"{file.family} ({file.mime})",
            encrypted=" ".join(filter(None, (file.encryption.state, file.encryption.how))),
            problems=[f"{p.kind}: {p.detail}" for p in file.problems],
            members=[f"{m.path} ({m.family}{', encrypted' if m.encrypted else ''})"
                     for m in file.walk() if m is not file][:50]))
    return out


def attachment_bytes(raw: bytes, index: int) -> tuple[str, bytes] | None:
    """The decoded bytes of one attachment, with its file name."""
    parts = report.attachment_parts(scan(raw))
    if not 0 <= index < len(parts):
        return None
    data = report.body_bytes(raw, parts[index])
    return None if data is None else (report.filename(parts[index], index + 1), data)


def in_context(text: str, lexicon: Any, limit: int = 50) -> list[tuple[str, str, str, str]]:
    """Each listed word in the text with the words around it: (before, word, after, rule)."""
    out = []
    written = readable(text)   # the hits' offsets count in it
    for hit in lexicon.scan(text):
        before = " ".join(written[max(0, hit.start - 80):hit.start].split()[-10:])
        after = " ".join(written[hit.end:hit.end + 80].split()[:10])
        out.append((before, written[hit.start:hit.end], after,
                    f"{hit.term.category}:{hit.term.id.rpartition(':')[2]}"))
        if len(out) >= limit:
            break
    return out
