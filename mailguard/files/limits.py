"""Bounds on attachment inspection, so a zip bomb or a pathological file becomes a finding
and never an outage: depth, member count, expanded bytes, compression ratio, time, text."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_depth: int = 4                  # archives inside archives inside …
    max_members: int = 1000             # files in all archives of one message
    max_expanded: int = 200 * 1024**2   # bytes unpacked from all archives of one message
    max_ratio: int = 500                # expanded / compressed, per member
    max_text: int = 32 * 1024**2        # characters of text read per file (more: "partial")
    max_rows: int = 200_000             # rows read per sheet (more: "partial")
    time_limit: float = 20.0            # seconds for all attachments of one message


class LimitExceeded(Exception):
    """A bound was hit: the attachment is treated as a bomb, not inspected further."""


class Budget:
    """What one message's inspection has spent so far, against its Limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.members = 0
        self.expanded = 0
        self.deadline = time.monotonic() + limits.time_limit

    def member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise LimitExceeded(f"more than {self.limits.max_members} files in its archives")

    def room(self) -> int:
        """How many more bytes may be unpacked (reads ask for one more to see overflow)."""
        return max(self.limits.max_expanded - self.expanded, 0)

    def spend(self, size: int, packed: int) -> None:
        self.expanded += size
        if self.expanded > self.limits.max_expanded:
            raise LimitExceeded(
                f"unpacks to more than {self.limits.max_expanded // 1024**2} MB")
        if size > 1024**2 and size > self.limits.max_ratio * max(packed, 1):
            raise LimitExceeded(f"a member expands {size // max(packed, 1)} times "
                                f"(limit {self.limits.max_ratio})")

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"inspection took more than {self.limits.time_limit:g} s")
