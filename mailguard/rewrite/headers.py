"""Replacing one field of a header block and leaving the rest byte for byte."""

from __future__ import annotations

from mailguard.mime import name_of, split_block


def replace(block: bytes, name: bytes, new_fields: list[bytes]) -> bytes:
    """Every `name` field removed; `new_fields` stand where the first one stood (or at the end)."""
    items, blank = split_block(block)
    out: list[bytes] = []
    placed = False
    for item in items:
        if name_of(item) == name.lower():
            if not placed:
                out.extend(new_fields)
                placed = True
            continue
        out.append(item)
    if not placed:
        out.extend(new_fields)
    return b"".join(out) + blank
