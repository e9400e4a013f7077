"""The files of a 7z archive, unpacked by py7zr into memory that stops the extraction once
the Budget is spent (py7zr's own BytesIO would keep decompressing and drop the bytes)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import py7zr
import py7zr.io

from mailguard.files.archives import Member
from mailguard.files.limits import Budget, LimitExceeded


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


def members(data: bytes, budget: Budget) -> Iterator[Member]:
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
