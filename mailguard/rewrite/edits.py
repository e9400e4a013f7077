"""The difference between a message and its rewritten copy, as the edits an MTA applies in
milter mode (insert, change or delete a header field, replace the body).

The relay sends the bytes `pipeline.outgoing` made; the milter cannot, so it hands the MTA
these edits instead, and the MTA's copy ends up with the same fields and body. The rewrites
keep fields in order: each is changed where it stands, deleted, or added at the end, and
the trace and signature go on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from mailguard import mime


@dataclass(frozen=True)
class Edits:
    """What to ask of the MTA. Values are in the milter's form: what follows the colon
    (leading space kept), folded with bare LF, no line break at the end."""

    top: tuple[tuple[str, str], ...] = ()            # insert above every other field, in order
    change: tuple[tuple[str, int, str], ...] = ()    # (name, nth of that name, value; "" deletes)
    append: tuple[tuple[str, str], ...] = ()         # add below the last field
    body: bytes | None = None                        # the whole new body, when it changed

    def __bool__(self) -> bool:
        return bool(self.top or self.change or self.append) or self.body is not None


def _split(field: bytes) -> tuple[str, str]:
    name, _, value = field.partition(b":")
    value = value.rstrip(b"\r\n").replace(b"\r\n", b"\n")
    return (name.decode("ascii", "surrogateescape").strip(),
            value.decode("utf-8", "surrogateescape"))


def edits(old: bytes, new: bytes) -> Edits:
    """The edits that turn `old` (as the MTA holds it) into `new`. Fields are lined up by
    name (difflib); a lined-up pair that differs is a change, an old field left over is
    deleted, and a new one is inserted on top if it comes before every old field, or added at
    the end (the rewrites add nothing in between, but if one did, the order still holds)."""
    old_end, new_end = mime.header_end(old), mime.header_end(new)
    old_fields, _ = mime.split_block(old[:old_end])
    new_fields, _ = mime.split_block(new[:new_end])
    names = [mime.name_of(f) for f in old_fields]
    nth = [names[:i + 1].count(n) for i, n in enumerate(names)]
    top: list[tuple[str, str]] = []
    change: list[tuple[str, int, str]] = []
    append: list[tuple[str, str]] = []
    lined_up = SequenceMatcher(None, names, [mime.name_of(f) for f in new_fields],
                               autojunk=False)
    for op, i1, i2, j1, j2 in lined_up.get_opcodes():
        if op != "equal" and j2 > j1 and 0 < i1 < len(old_fields):
            # A field new in the middle: libmilter has no portable "insert after" (Postfix
            # counts its own hidden Received), so the rest is deleted and added again below.
            change.extend((_split(old_fields[i])[0], nth[i], "")
                          for i in range(i1, len(old_fields)))
            append.extend(_split(f) for f in new_fields[j1:])
            break
        if op == "equal":
            change.extend((_split(old_fields[i])[0], nth[i], _split(new_fields[j])[1])
                          for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                          if old_fields[i] != new_fields[j])
            continue
        change.extend((_split(old_fields[i])[0], nth[i], "") for i in range(i1, i2))
        (top if i1 == 0 else append).extend(_split(f) for f in new_fields[j1:j2])
    # Deleting the second of two fields before the first keeps "nth" true however the MTA
    # counts fields already deleted.
    change.sort(key=lambda c: (c[0].lower(), -c[1]))
    body = None if old[old_end:] == new[new_end:] else bytes(new[new_end:])
    return Edits(tuple(top), tuple(change), tuple(append), body)
