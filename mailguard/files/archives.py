"""The files inside an archive, unpacked in memory within a Budget: each read asks for at
most the bytes still allowed (plus one, to see an overflow), so a bomb stops early.

Readers of formats other than zip and tar are imported when first needed: together they
would add tens of MB to every worker, most of which never sees a RAR."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mailguard.files.limits import Budget, LimitExceeded

ARCHIVES = frozenset({"zip", "7z", "rar", "tar", "gzip", "bzip2", "xz", "tnef", "outlook"})
_STREAMS = {"gzip": (gzip.open, ".gz"), "bzip2": (bz2.open, ".bz2"),
            "xz": (lzma.open, ".xz")}


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes | None   # None when it is encrypted (listed, not readable)


def members(family: str, name: str, data: bytes, budget: Budget) -> Iterator[Member]:
    """Each file of the archive, in order; raises LimitExceeded past a bound."""
    if family == "zip":
        yield from _zip(data, budget)
    elif family == "7z":
        from mailguard.files import sevenzip  # py7zr and its codecs: loaded when needed

        yield from sevenzip.members(data, budget)
    elif family == "rar":
        yield from _rar(data, budget)
    elif family == "tnef":
        yield from _tnef(data, budget)
    elif family == "outlook":
        yield from _outlook(data, budget)
    else:
        yield from _tar_or_stream(family, name, data, budget)


def _read(stream: io.RawIOBase | io.BufferedIOBase | None, budget: Budget, packed: int) -> bytes:
    if stream is None:
        return b""
    out = bytearray()
    room = budget.room()
    while len(out) <= room:
        chunk = stream.read(min(1024**2, room + 1 - len(out)))
        if not chunk:
            break
        out += chunk
        budget.tick()
    budget.spend(len(out), packed)
    return bytes(out)


def _zip(data: bytes, budget: Budget) -> Iterator[Member]:
    yield from _each(zipfile.ZipFile(io.BytesIO(data)), lambda i: bool(i.flag_bits & 1), budget)


def _rar(data: bytes, budget: Budget) -> Iterator[Member]:
    import rarfile

    yield from _each(rarfile.RarFile(io.BytesIO(data)), lambda i: i.needs_password(), budget)


def _each(archive: Any, encrypted: Callable[[Any], bool], budget: Budget) -> Iterator[Member]:
    """The files of a zip or RAR (rarfile mirrors zipfile's API): encrypted ones by name."""
    for info in archive.infolist():
        if info.is_dir():
            continue
        budget.member()
        if encrypted(info):
            yield Member(info.filename, None)
            continue
        if info.file_size > budget.room():
            raise LimitExceeded(f"{info.filename} would unpack to {info.file_size} bytes")
        with archive.open(info) as stream:
            yield Member(info.filename, _read(stream, budget, info.compress_size))


def _tar_or_stream(family: str, name: str, data: bytes, budget: Budget) -> Iterator[Member]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for info in archive:
                budget.tick()
                if not info.isfile():
                    continue
                budget.member()
                if info.size > budget.room():
                    raise LimitExceeded(f"{info.name} would unpack to {info.size} bytes")
                yield Member(info.name, _read(archive.extractfile(info), budget, len(data)))
            return
    except tarfile.ReadError:
        pass   # not a tar: a single compressed file
    opener, suffix = _STREAMS.get(family, (None, ""))
    if opener is None:
        raise ValueError(f"not a readable {family}")
    budget.member()
    inner = name[: -len(suffix)] if name.lower().endswith(suffix) else name + ".out"
    with opener(io.BytesIO(data)) as stream:
        yield Member(inner, _read(stream, budget, len(data)))


def _tnef(data: bytes, budget: Budget) -> Iterator[Member]:
    """Outlook's winmail.dat: its attachments, and its body (plain, HTML or RTF) as files."""
    import tnefparse

    tnef = tnefparse.TNEF(data)
    bodies = [("message body.txt", tnef.body), ("message body.html", tnef.htmlbody),
              ("message body.rtf", tnef.rtfbody)]
    for name, body in bodies:
        if body:
            budget.member()
            raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
            budget.spend(len(raw), len(data))
            yield Member(name, raw)
    for index, item in enumerate(tnef.attachments, 1):
        budget.member()
        budget.spend(len(item.data), len(data))
        name = item.long_filename() or (item.name.decode("cp1252", "replace")
                                        if isinstance(item.name, bytes) else item.name)
        yield Member(name or f"attachment {index}", bytes(item.data))


_MSG_BODIES = (("__substg1.0_0037001F", "subject.txt"), ("__substg1.0_1000001F", "message body.txt"),
               ("__substg1.0_1000001E", "message body.txt"),
               ("__substg1.0_10130102", "message body.html"))


def _outlook(data: bytes, budget: Budget) -> Iterator[Member]:
    """A saved Outlook message (.msg, MS-OXMSG): subject and body as files, then each
    attached file. (Messages attached inside it are listed as uninspectable by name.)"""
    import olefile

    ole = olefile.OleFileIO(data)

    def stream(path: str) -> bytes:
        budget.tick()
        size = ole.get_size(path)
        if size > budget.room():
            raise LimitExceeded(f"{path} would unpack to {size} bytes")
        raw = ole.openstream(path).read()
        budget.spend(len(raw), len(data))
        return raw

    def text(path: str) -> str:
        raw = stream(path)
        return raw.decode("utf-16-le", "replace") if path.endswith("1F") else raw.decode(
            "cp1252", "replace")

    for path, name in _MSG_BODIES:
        if ole.exists(path):
            budget.member()
            raw = stream(path)
            yield Member(name, text(path).encode() if path.endswith(("1F", "1E")) else raw)
    folders = sorted({entry[0] for entry in ole.listdir() if entry[0].startswith("__attach")})
    for index, folder in enumerate(folders, 1):
        budget.member()
        name = next((text(f"{folder}/{s}") for s in ("__substg1.0_3707001F",
                     "__substg1.0_3704001F", "__substg1.0_3001001F")
                     if ole.exists(f"{folder}/{s}")), f"attachment {index}").rstrip("\0")
        if ole.exists(f"{folder}/__substg1.0_37010102"):
            yield Member(name, stream(f"{folder}/__substg1.0_37010102"))
        else:   # an embedded message (3701000D): not opened
            raise ValueError(f"{name} is a message inside the message")
