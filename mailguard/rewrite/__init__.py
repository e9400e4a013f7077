"""Pure byte → byte transforms. Each changes only what it means to and splices bytes."""

from __future__ import annotations

from collections.abc import Iterable


def splice(raw: bytes, edits: Iterable[tuple[int, int, bytes]]) -> bytes:
    """`raw` with raw[start:end] replaced by new bytes for each (start, end, new) edit, built
    in one join over views of `raw`: one copy of the message, however many edits."""
    view = memoryview(raw)
    pieces: list[bytes | memoryview] = []
    at = 0
    for start, end, new in sorted(edits, key=lambda e: e[0]):
        pieces += [view[at:start], new]
        at = end
    pieces.append(view[at:])
    return b"".join(pieces)
