"""What a file really is, from its bytes (libmagic via python-magic), and what its name claims.

The name and the declared Content-Type are the sender's word; the bytes are the truth. A
file whose bytes are an executable but whose name says .pdf is the classic disguise, so a
disagreement between the two is a finding of its own.
"""

from __future__ import annotations

import threading
from pathlib import PurePosixPath

import magic

SNIFF_BYTES = 256 * 1024   # libmagic reads the head of a file; OOXML needs its zip directory hints
_local = threading.local()

# libmagic's MIME types → the family mailguard reasons about.
_FAMILIES: dict[str, str] = {
    "application/pdf": "pdf",
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",
    "application/java-archive": "zip",
    "application/x-7z-compressed": "7z",
    "application/x-rar": "rar",
    "application/vnd.rar": "rar",
    "application/x-tar": "tar",
    "application/gzip": "gzip",
    "application/x-gzip": "gzip",
    "application/x-bzip2": "bzip2",
    "application/x-xz": "xz",
    "application/x-ole-storage": "ole",
    "application/CDFV2": "ole",
    "application/encrypted": "ole",       # libmagic's name for an encrypted CFB container
    "application/msword": "ole",
    "application/vnd.ms-excel": "ole",
    "application/vnd.ms-powerpoint": "ole",
    "application/vnd.ms-outlook": "outlook",   # a saved Outlook message (.msg)
    "application/x-msi": "executable",
    "application/x-dosexec": "executable",
    "application/x-msdownload": "executable",
    "application/vnd.microsoft.portable-executable": "executable",
    "application/x-executable": "executable",
    "application/x-sharedlib": "executable",
    "application/x-pie-executable": "executable",
    "application/x-mach-binary": "executable",
    "application/x-elf": "executable",
    "application/x-ms-shortcut": "script",
    "text/x-shellscript": "script",
    "text/x-msdos-batch": "script",
    "application/x-bat": "script",
    "text/x-python": "script",
    "text/x-perl": "script",
    "text/html": "html",
    "text/rtf": "rtf",
    "application/rtf": "rtf",
    "text/csv": "csv",
    "application/pgp-encrypted": "pgp",
    "application/pgp-keys": "pgp",
    "application/pgp": "pgp",
    "message/rfc822": "message",
    "application/vnd.ms-tnef": "tnef",     # Outlook's winmail.dat: attachments inside
    "application/pkcs7-mime": "smime",
    "application/x-pkcs7-mime": "smime",
}
_PREFIXES = (
    ("application/vnd.openxmlformats-officedocument.", "ooxml"),
    ("application/vnd.ms-word.", "ooxml"),
    ("application/vnd.ms-excel.", "ooxml"),
    ("application/vnd.ms-powerpoint.", "ooxml"),
    ("application/vnd.oasis.opendocument.", "odf"),
    ("image/", "image"),
    ("audio/", "media"),
    ("video/", "media"),
    ("text/", "text"),
)

# What a name's extension promises. Scripts have no magic of their own (a .js or .vbs is
# plain text to libmagic), so for them the name is the signal.
EXTENSIONS: dict[str, str] = {
    **dict.fromkeys(("exe", "dll", "com", "scr", "msi", "sys", "cpl", "pif", "elf", "so",
                     "dylib", "app", "bin"), "executable"),
    **dict.fromkeys(("js", "jse", "vbs", "vbe", "wsf", "wsh", "ps1", "psm1", "bat", "cmd",
                     "hta", "lnk", "jar", "sh", "reg", "vb", "msc", "scf", "url", "iso", "img"),
                    "script"),
    "pdf": "pdf",
    **dict.fromkeys(("docx", "xlsx", "pptx", "docm", "xlsm", "pptm", "dotx", "dotm", "xltx",
                     "xltm", "potx", "ppsx", "ppsm"), "ooxml"),
    **dict.fromkeys(("doc", "xls", "ppt", "dot", "xlt", "pps"), "ole"),
    "msg": "outlook",
    **dict.fromkeys(("odt", "ods", "odp", "odg"), "odf"),
    **dict.fromkeys(("zip", "zipx"), "zip"),
    "7z": "7z", "rar": "rar", "tar": "tar", "gz": "gzip", "tgz": "gzip",
    **dict.fromkeys(("jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp", "heic"), "image"),
    **dict.fromkeys(("txt", "csv", "tsv", "log", "md"), "text"),
    **dict.fromkeys(("htm", "html"), "html"),
    "rtf": "rtf", "eml": "message", "dat": "tnef",
    **dict.fromkeys(("pgp", "gpg", "asc"), "pgp"),
    **dict.fromkeys(("p7m", "p7s"), "smime"),
}
# Families whose bytes satisfy a name of another family (a .docx is a zip; a .csv is text).
_COMPATIBLE = {
    "zip": {"ooxml", "odf", "script"}, "ooxml": {"zip"}, "odf": {"zip"},
    "text": {"csv", "html", "rtf", "script", "pgp", "message"}, "csv": {"text"},
    "html": {"text"}, "rtf": {"text"}, "gzip": {"tar"}, "pgp": {"text"},
    "message": {"text", "outlook"},          # Apple Mail saves .msg files as plain messages
    "ole": {"ooxml", "outlook"},             # an encrypted .docx is a CFB container
}
# Families the bytes alone make dangerous, whatever the name.
DANGEROUS = frozenset({"executable", "script"})


def _magic() -> magic.Magic:
    """One libmagic handle per thread: a magic_t must not be shared between threads."""
    handle = getattr(_local, "magic", None)
    if handle is None:
        handle = _local.magic = magic.Magic(mime=True)
    return handle


def sniff(data: bytes | memoryview) -> str:
    """The MIME type libmagic reads from the bytes ("application/octet-stream" if unknown)."""
    try:
        return _magic().from_buffer(bytes(data[:SNIFF_BYTES])) or "application/octet-stream"
    except magic.MagicException:
        return "application/octet-stream"


def family_of(mime_type: str) -> str:
    family = _FAMILIES.get(mime_type)
    if family:
        return family
    return next((f for prefix, f in _PREFIXES if mime_type.startswith(prefix)), "other")


def extension(name: str) -> str:
    return PurePosixPath(name.lower().rstrip(". ")).suffix.lstrip(".")


def claimed(name: str) -> str | None:
    """The family the file name's extension promises, if it is one we know."""
    return EXTENSIONS.get(extension(name))


def mismatch(name: str, mime_type: str) -> str | None:
    """Why the bytes contradict the name, or None. Only known families on both sides count:
    libmagic says "octet-stream" for much that is fine, and that is not a disguise."""
    promised, family = claimed(name), family_of(mime_type)
    if promised is None or family in ("other", promised):
        return None
    if not (family in DANGEROUS and promised not in DANGEROUS) and (
            promised in DANGEROUS or promised in _COMPATIBLE.get(family, ())):
        return None
    return f"named .{extension(name)} but its bytes are {mime_type} ({family})"
