"""Whether a file is encrypted, read from its bytes: the format's own encryption markers, not
the name, and never a guess that a file is protected when it opens without a password."""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import zipfile
from dataclasses import dataclass

YES, NO, PARTIAL, UNKNOWN = "yes", "no", "partial", "unknown"
PGP_ENCRYPTED_TAGS = {1, 3, 9, 18, 20}   # session keys, encrypted data packets (RFC 9580)
ENVELOPED_OIDS = (bytes.fromhex("06092a864886f70d010703"),            # envelopedData
                  bytes.fromhex("060b2a864886f70d0109100117"))       # authEnvelopedData
ARMOUR = re.compile(rb"-----BEGIN PGP MESSAGE-----\r?\n(?:[^\r\n]+\r?\n)*?\r?\n([A-Za-z0-9+/=\r\n]+)")


@dataclass(frozen=True)
class Encryption:
    state: str = NO   # yes, no, partial (some members), unknown (could not tell)
    how: str = ""


def detect(family: str, data: bytes) -> Encryption:
    """The encryption of one file of the given family (see filetype.family_of)."""
    finder = _DETECTORS.get(family)
    if finder is None:
        finder = _other if family == "other" else None
    if finder is None:
        return Encryption()
    try:
        return finder(data)
    except Exception as e:  # a malformed file is not proof of anything: say we cannot tell
        return Encryption(UNKNOWN, f"{family} could not be read ({type(e).__name__})")


def _members(flags: list[bool], what: str) -> Encryption:
    done = sum(flags)
    if not flags or not done:
        return Encryption()
    state = YES if done == len(flags) else PARTIAL
    return Encryption(state, f"{what}: {done} of {len(flags)} files encrypted")


def _pdf(data: bytes) -> Encryption:
    if b"/Encrypt" not in data:   # an encrypted PDF's trailer always names it, uncompressed
        return Encryption()
    import pypdf  # format readers load on first use (see archives.py)
    from pypdf import PasswordType

    reader = pypdf.PdfReader(io.BytesIO(data))
    if not reader.is_encrypted:
        return Encryption()
    if reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        return Encryption(YES, "PDF encrypted: it needs a password to open")
    # Only an owner ("permissions") password: anyone can open and read it.
    return Encryption(NO, "PDF has permission restrictions only and opens without a password")


def _ole(data: bytes) -> Encryption:
    import msoffcrypto
    import olefile
    from msoffcrypto.exceptions import FileFormatError

    try:
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
    except FileFormatError:
        ole = olefile.OleFileIO(data)
        if ole.exists("EncryptionInfo") and ole.exists("EncryptedPackage"):
            return Encryption(YES, "Office document encrypted (EncryptionInfo, EncryptedPackage)")
        return Encryption()
    if office.is_encrypted():
        kind = {"OOXMLFile": "Office 2007+ document", "Doc97File": "Word 97-2003 document",
                "Xls97File": "Excel 97-2003 workbook", "Ppt97File": "PowerPoint 97-2003 deck"}
        name = kind.get(type(office).__name__, "Office document")
        return Encryption(YES, f"{name} encrypted with a password")
    return Encryption()


def _zip(data: bytes) -> Encryption:
    try:
        infos = [i for i in zipfile.ZipFile(io.BytesIO(data)).infolist() if not i.is_dir()]
    except zipfile.BadZipFile:
        # PKWARE strong encryption can encrypt the central directory itself; the first local
        # header still says so (flag bit 0 encrypted, bit 6 strong encryption).
        if data[:4] == b"PK\x03\x04" and struct.unpack_from("<H", data, 6)[0] & 0x41:
            return Encryption(YES, "zip with strong encryption (directory unreadable)")
        raise
    aes = any(i.compress_type == 99 or b"\x01\x99" in i.extra for i in infos)
    return _members([bool(i.flag_bits & 1) for i in infos],
                    "zip, WinZip AES" if aes else "zip, ZipCrypto")


def _odf(data: bytes) -> Encryption:
    archive = zipfile.ZipFile(io.BytesIO(data))
    try:
        manifest = archive.read("META-INF/manifest.xml")
    except KeyError:
        return Encryption()
    entries = re.findall(rb"<manifest:file-entry\b.*?(?:/>|</manifest:file-entry>)", manifest, re.S)
    files = [e for e in entries if b'full-path="/"' not in e and not e.endswith(b'/"/>')]
    if any(b'full-path="content.xml"' in e and b"encryption-data" in e for e in files):
        return Encryption(YES, "OpenDocument encrypted with a password")
    return _members([b"encryption-data" in e for e in files], "OpenDocument")


def _sevenzip(data: bytes) -> Encryption:
    import py7zr

    try:
        archive = py7zr.SevenZipFile(io.BytesIO(data))
    except py7zr.exceptions.PasswordRequired:
        return Encryption(YES, "7z with encrypted file names and contents")
    with archive:
        if archive.needs_password():
            return Encryption(YES, "7z with encrypted contents")
    return Encryption()


def _rar(data: bytes) -> Encryption:
    import rarfile

    archive = rarfile.RarFile(io.BytesIO(data))
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if archive.needs_password() and not infos:
        return Encryption(YES, "RAR with encrypted file names and contents")
    return _members([i.needs_password() for i in infos], "RAR")


def _pgp(data: bytes) -> Encryption:
    """OpenPGP: armoured or binary; encrypted when the first packet is a session key or
    encrypted data (a signed or compressed-only message is not)."""
    m = ARMOUR.search(data[:64 * 1024])
    if m:
        try:
            data = base64.b64decode(m.group(1), validate=False)
        except binascii.Error:
            return Encryption(UNKNOWN, "OpenPGP armour could not be decoded")
    if not data or not data[0] & 0x80:
        return Encryption()
    tag = data[0] & 0x3F if data[0] & 0x40 else (data[0] >> 2) & 0x0F
    if tag in PGP_ENCRYPTED_TAGS:
        return Encryption(YES, "OpenPGP encrypted")
    return Encryption()


def _smime(data: bytes) -> Encryption:
    if data[:1] == b"0" and any(oid in data[:40] for oid in ENVELOPED_OIDS):
        return Encryption(YES, "S/MIME enveloped (encrypted)")
    return Encryption()


def _other(data: bytes) -> Encryption:
    """Bytes libmagic could not name: an S/MIME or binary OpenPGP blob looks like this."""
    found = _smime(data)
    return found if found.state == YES else _pgp(data)


_DETECTORS = {"pdf": _pdf, "ole": _ole, "zip": _zip, "odf": _odf, "7z": _sevenzip,
              "rar": _rar, "pgp": _pgp, "text": _pgp, "smime": _smime}
