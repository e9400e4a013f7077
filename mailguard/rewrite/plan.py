"""Carry out a verdict's plan on the bytes: each step by the handler that owns it, in the
plan's order. Signing and splitting belong to delivery, which does them after these."""

from __future__ import annotations

from collections.abc import Iterable

from mailguard.mime.parts import Part, scan
from mailguard.model import AddDisclaimer, HideRecipients, SplitPerRecipient, Step, TagSubject
from mailguard.rewrite import disclaimer, recipients, subject


def carry_out(raw: bytes, steps: Iterable[Step], parsed: tuple[bytes, Part] | None = None,
              ) -> bytes:
    """`raw` changed as the steps say. `parsed` is (bytes, their MIME tree) as the checks read
    them, reused by a step that gets those very bytes (most mail: the disclaimer alone)."""
    data = raw
    for step in steps:
        if isinstance(step, TagSubject):
            data = subject.tagged(data, step.tag)
        elif isinstance(step, AddDisclaimer):
            d = disclaimer.Disclaimer(step.text, step.html, step.position)
            if step.wrap:
                tree = parsed[1] if parsed is not None and parsed[0] is data else None
                data = disclaimer.wrap(data, tree or scan(data), d)
            else:
                data = disclaimer.apply(data, d, parsed)
        elif isinstance(step, HideRecipients):
            data = recipients.hide(data, frozenset(step.hidden), step.to, step.note)
    return data


def each_copy(plan: tuple[Step, ...]) -> tuple[Step, ...]:
    """The plan for one recipient's own copy of a split message: already addressed to them
    alone, so nobody is left to hide and nothing more to split."""
    return tuple(s for s in plan if not isinstance(s, HideRecipients | SplitPerRecipient))
