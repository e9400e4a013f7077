"""A small set of words and phrases found in text in one Hyperscan pass: the personal and
school-context words of the personal check, tunable in config. A Python alternation with
word boundaries took about 1 ms per 10 KB; this takes a few microseconds."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

import hyperscan


class Phrases:
    """Whole words and phrases, caseless; `found(text)` says which occur."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self.phrases = tuple(dict.fromkeys(p.strip().lower() for p in phrases if p.strip()))
        self._local = threading.local()
        self._db: hyperscan.Database | None = None
        if self.phrases:
            self._db = hyperscan.Database()
            self._db.compile(
                expressions=[rb"\b" + re.escape(p).encode() + rb"\b" for p in self.phrases],
                ids=list(range(len(self.phrases))), elements=len(self.phrases),
                flags=[hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH]
                * len(self.phrases))

    def found(self, text: str) -> set[str]:
        if self._db is None:
            return set()
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        hits: set[str] = set()
        self._db.scan(text.encode("utf-8", "ignore"), scratch=scratch,
                      match_event_handler=lambda i, _f, _t, _fl, _c: hits.add(self.phrases[i]))
        return hits
