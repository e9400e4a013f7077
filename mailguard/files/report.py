"""Every attachment of a message, inspected once: true type, encryption, words, tables and
archive members, within one Budget. The checks (attachments, confidential, language) read
the same report."""

from __future__ import annotations

import asyncio
import binascii
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header

from mailguard.files import archives, encryption, filetype
from mailguard.files.encryption import YES, Encryption
from mailguard.files.extract import Extracted, extract
from mailguard.files.limits import Budget, LimitExceeded, Limits
from mailguard.mime.parts import SIGNED_TYPES, Part, decode_body, displayed, scan, text_of
from mailguard.model import INLINE_LIMIT, Mail

SIGNATURES = ("application/pkcs7-signature", "application/x-pkcs7-signature",
              "application/pgp-signature")
SEPARATOR = " > "   # ASCII: paths appear in SMTP replies


@dataclass(frozen=True)
class Problem:
    kind: str     # "disguised", "limits" (a bomb), "partial" (too big to read whole), "uninspectable"
    detail: str


@dataclass
class FileReport:
    """One attachment or archive member, as its bytes show it."""

    path: str                 # "pupils.zip > Year 7.xlsx"
    size: int
    mime: str                 # what libmagic read in the bytes
    family: str
    declared: str = ""        # the Content-Type the sender's mail program gave
    encryption: Encryption = field(default_factory=Encryption)
    extracted: Extracted = field(default_factory=Extracted)
    problems: list[Problem] = field(default_factory=list)
    members: list[FileReport] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.rpartition(SEPARATOR)[2]

    @property
    def encrypted(self) -> bool:
        return self.encryption.state == YES

    @property
    def dangerous(self) -> str | None:
        """"executable" or "script", by its bytes or (scripts being plain text) its name."""
        if self.family in filetype.DANGEROUS:
            return self.family
        claimed = filetype.claimed(self.name)
        return claimed if claimed in filetype.DANGEROUS else None

    def walk(self) -> Iterator[FileReport]:
        yield self
        for member in self.members:
            yield from member.walk()


@dataclass
class MailFiles:
    files: list[FileReport]
    encrypted_message: str = ""   # how, when the whole message is S/MIME or PGP encrypted

    def walk(self) -> Iterator[FileReport]:
        for f in self.files:
            yield from f.walk()


def filename(part: Part, index: int) -> str:
    raw = part.headers.get_filename() or part.headers.get_param("name")
    if not isinstance(raw, str) or not raw.strip():
        return f"unnamed part {index} ({part.content_type})"
    try:
        return str(make_header(decode_header(raw))).strip()
    except (ValueError, LookupError, binascii.Error):
        return raw.strip()


def attachment_parts(tree: Part) -> list[Part]:
    """Leaf parts that are not a body the reader sees and not a signature."""
    shown = {id(p) for p in displayed(tree)}
    return [p for p in tree.walk() if not p.children and p.maintype != "multipart"
            and id(p) not in shown and p.content_type not in SIGNATURES
            and p.content_type != "application/pgp-encrypted"]


def message_encryption(tree: Part, raw: bytes) -> str:
    """How the message as a whole is encrypted ("" if it is not)."""
    ctype = tree.content_type
    if ctype == "multipart/encrypted":
        return f"the whole message is encrypted ({tree.headers.get_param('protocol')})"
    if ctype in SIGNED_TYPES and ctype.endswith("pkcs7-mime"):
        head = raw[tree.body_start:min(tree.end, tree.body_start + 4096)]   # the DER header
        if tree.transfer_encoding == "base64":
            letters = re.sub(rb"[^A-Za-z0-9+/]", b"", head)
            head = binascii.a2b_base64(letters[: len(letters) // 4 * 4])
        if encryption.detect("smime", head[:64]).state == YES:
            return "the whole message is S/MIME encrypted"
    return ""


def body_bytes(raw: bytes, part: Part) -> bytes | None:
    data = decode_body(memoryview(raw)[part.body_start:part.end], part.transfer_encoding)
    return None if data is None else bytes(data)


def inspect_file(path: str, declared: str, data: bytes, budget: Budget, depth: int) -> FileReport:
    """A file's report, with its members' when it is an archive or an attached message."""
    mime = filetype.sniff(data)
    if declared == "message/rfc822" and mime.startswith("text/"):
        mime = declared   # libmagic knows a message only by some of its first headers
    report = FileReport(path, len(data), mime, filetype.family_of(mime), declared)
    if report.family == "zip":
        report.family = _office_zip(report.name, data)
    why = filetype.mismatch(report.name, mime)
    if why:
        report.problems.append(Problem("disguised", why))
    try:
        budget.tick()
        report.encryption = encryption.detect(report.family, data)
        if not report.encrypted:
            report.extracted = extract(report.family, report.name, data, budget)
            if report.extracted.truncated:
                report.problems.append(Problem("partial", report.extracted.truncated))
        if report.family in archives.ARCHIVES or report.family == "message":
            if depth >= budget.limits.max_depth:
                raise LimitExceeded(f"archives nested more than {budget.limits.max_depth} deep")
            _unpack(report, data, budget, depth)
    except LimitExceeded as e:
        report.problems.append(Problem("limits", str(e)))
    except Exception as e:  # malformed files are common; say so, never crash the session
        if not report.encrypted:   # an archive whose very names are encrypted cannot be listed
            report.problems.append(Problem(
                "uninspectable", f"{report.family} could not be read ({type(e).__name__})"))
    return report


def _office_zip(name: str, data: bytes) -> str:
    """libmagic names some Office and OpenDocument files plain zip; their own marker file
    says which (a zip merely named .docx stays a zip, and is unpacked)."""
    claimed = filetype.claimed(name)
    marker = {"ooxml": "[Content_Types].xml", "odf": "mimetype"}.get(claimed or "")
    if marker is None:
        return "zip"
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).NameToInfo
    except (zipfile.BadZipFile, ValueError, OSError):
        return "zip"
    return claimed if marker in names and claimed else "zip"


def _unpack(report: FileReport, data: bytes, budget: Budget, depth: int) -> None:
    if report.family == "message":
        inner = scan(data)
        report.extracted.text = "\n".join(t for p in displayed(inner)
                                          if (t := text_of(data, p)) is not None)
        report.members = _attachments(data, inner, budget, depth + 1, report.path + SEPARATOR)
        return
    for member in archives.members(report.family, report.name, data, budget):
        path = report.path + SEPARATOR + member.name
        if member.data is None:
            family = filetype.claimed(member.name) or "other"
            report.members.append(FileReport(path, 0, "", family, encryption=Encryption(
                YES, "inside an encrypted archive")))
        else:
            report.members.append(inspect_file(path, "", member.data, budget, depth + 1))


def _attachments(raw: bytes, tree: Part, budget: Budget, depth: int, prefix: str) -> list[FileReport]:
    out = []
    for index, part in enumerate(attachment_parts(tree), 1):
        try:
            data = body_bytes(raw, part)
        except (ValueError, binascii.Error):
            data = None
        path = prefix + filename(part, index)
        if data is None:
            out.append(FileReport(path, part.end - part.body_start, "", "other", part.content_type,
                                  problems=[Problem("uninspectable", "its transfer encoding "
                                                    f"{part.transfer_encoding!r} could not be "
                                                    "decoded")]))
            continue
        out.append(inspect_file(path, part.content_type, data, budget, depth))
    return out


def inspect_mail(mail: Mail, limits: Limits) -> MailFiles:
    """The report on every attachment of a message (blocking: large ones go to a thread)."""
    encrypted = message_encryption(mail.parts, mail.raw)
    if encrypted:
        return MailFiles([], encrypted)
    return MailFiles(_attachments(mail.raw, mail.parts, Budget(limits), 0, ""))


async def of(mail: Mail, limits: Limits) -> MailFiles:
    """The message's report, made once however many checks ask; big ones in a thread."""
    cached = mail.files_cache
    if cached is None:
        parts = attachment_parts(mail.parts)
        if sum(p.end - p.body_start for p in parts) <= INLINE_LIMIT // 4:
            future: asyncio.Future[MailFiles] = asyncio.get_running_loop().create_future()
            future.set_result(inspect_mail(mail, limits))
            cached = future
        else:
            cached = asyncio.ensure_future(asyncio.to_thread(inspect_mail, mail, limits))
        mail.files_cache = cached
    return await asyncio.shield(cached)
