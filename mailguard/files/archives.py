"""The files inside an archive, unpacked in memory within a Budget: each read asks for at
most the bytes still allowed (plus one, to see an overflow), so a bomb stops early."""

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

import py7zr
import py7zr.io
import rarfile
import tnefparse

from mailguard.files.limits import Budget, LimitExceeded

ARCHIVES = frozenset({"zip", "7z", "rar", "tar", "gzip", "bzip2", "xz", "tnef"})
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
        yield from _sevenzip(data, budget)
    elif family == "rar":
        yield from _rar(data, budget)
    elif family == "tnef":
        yield from _tnef(data, budget)
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


class _Capped(py7zr.io.Py7zIO):
    """An in-memory file for py7zr that stops the extraction once the budget is spent."""

    def __init__(self, budget: Budget) -> None:
        self.budget, self.buffer = budget, io.BytesIO()

    def write(self, s: bytes | bytearray) -> int:
        if self.buffer.tell() + len(s) > self.budget.room():
            raise LimitExceeded(f"unpacks to more than {self.budget.limits.max_expanded} bytes")
        self.budget.tick()
        return self.buffer.write(s)

    def read(self, size: int | None = None) -> bytes:
        return self.buffer.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.buffer.seek(offset, whence)

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self.buffer.getbuffer().nbytes


class _Factory(py7zr.io.WriterFactory):
    def __init__(self, budget: Budget) -> None:
        self.budget, self.products = budget, {}

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        self.products[filename] = _Capped(self.budget)
        return self.products[filename]


def _sevenzip(data: bytes, budget: Budget) -> Iterator[Member]:
    with py7zr.SevenZipFile(io.BytesIO(data)) as archive:
        infos = [i for i in archive.list() if not i.is_directory]
        if archive.needs_password():
            for info in infos:
                budget.member()
                yield Member(info.filename, None)
            return
        declared = sum(i.uncompressed for i in infos)
        if declared > budget.room():
            raise LimitExceeded(f"would unpack to {declared} bytes")
        for _ in infos:
            budget.member()
        factory = _Factory(budget)
        archive.extract(factory=factory)
    packed = len(data)
    for info in infos:
        product = factory.products.get(info.filename)
        body = product.buffer.getvalue() if product else b""
        budget.spend(len(body), max(packed * len(body) // max(declared, 1), 1))
        yield Member(info.filename, body)



def _tnef(data: bytes, budget: Budget) -> Iterator[Member]:
    """Outlook's winmail.dat: its attachments, and its body (plain, HTML or RTF) as files."""
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
