"""Wordlist files: the line format IT edits, loading with `file: line N: problem` errors, and
the lint that catches a list change before it goes live. Matching is in matcher.py.

List format (one entry a line, `#` comments):
    word                    the word alone (Scunthorpe, Essex, classic never match "ass")
    word*                   the word and words that start with it (stems)
    two words               a phrase: the words in order, with anything but letters between
    re:PATTERN              a regular expression over normalised text, explicitly marked
    ... ; severity=high     low | medium | high (default: the file's, else medium)
    ... ; with=you,your     only with one of these words (or stems, `word*`) in its sentence
    ... ; unless=dog,kennel never with any of these in its sentence
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailguard.matcher import WORD, Hit, Matcher, Term, normalise, readable

__all__ = [
    "Hit",
    "Lexicon",
    "LexiconError",
    "Term",
    "explain",
    "lint",
    "load",
    "normalise",
    "readable",
]

SEVERITIES = ("low", "medium", "high")


class LexiconError(ValueError):
    """A wordlist line that cannot be used, worded `file: line N: problem`."""


@dataclass
class Lexicon:
    """The entries as listed (for lint and the tools) and, once built, their matcher."""
    allow: frozenset[str] = frozenset()
    terms: list[Term] = field(default_factory=list)
    _matcher: Matcher | None = field(default=None, repr=False)

    def add(self, term: Term) -> None:
        self._matcher = None
        self.terms.append(term)

    @property
    def matcher(self) -> Matcher:
        """Compiled on first use; load() builds it at once, in the loading thread."""
        if self._matcher is None:
            self._matcher = Matcher(self.terms, self.allow)
        return self._matcher

    def scan(self, text: str) -> list[Hit]:
        """Every listed word, stem, phrase or pattern in the text; offsets count in
        readable(text), the text with HTML entities decoded. An entry with conditions
        (`with=`, `unless=`) counts only where its sentence meets them."""
        written = readable(text)
        hits = self.matcher.scan(written)
        if any(h.term.companions or h.term.unless for h in hits):
            hits = [h for h in hits if _meets(h, written)]
        return hits


_OPTION = re.compile(r";\s*(\w+)\s*=\s*([\w,'*-]+)\s*$")
SENTENCE_END = re.compile(r"[.!?;]+(?:\s|$)|\n\s*\n")


@dataclass(frozen=True)
class Line:
    """One list entry as written: the entry and its options."""

    entry: str
    severity: str
    tags: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()


def parse_line(line: str, default_severity: str) -> Line | None:
    """One list line, or None for blanks and comments."""
    line = line.split(" #")[0].strip() if not line.lstrip().startswith("re:") else line.strip()
    if not line or line.startswith("#"):
        return None
    options: dict[str, Any] = {"severity": default_severity}
    while m := _OPTION.search(line):
        key, value = m.group(1).lower(), m.group(2).lower()
        if key == "severity":
            if value not in SEVERITIES:
                raise ValueError(f"severity must be low, medium or high, not {value!r}")
            options["severity"] = value
        elif key in ("tags", "with", "unless"):
            words = tuple(v for v in value.split(",") if v)
            options["companions" if key == "with" else key] = words
        else:
            raise ValueError(f"unknown option {key!r} (severity, tags, with, unless)")
        line = line[:m.start()].rstrip()
    return Line(line, **options)


def sentence_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Where the sentence around text[start:end] begins and ends: from the last full stop,
    ! ? ; or blank line before it to the next (email's wrapped lines are not sentence ends);
    600 characters either way at most."""
    begin = max(0, start - 600) if start > 600 else 0
    for m in SENTENCE_END.finditer(text, max(0, start - 600), start):
        begin = m.end()
    after = SENTENCE_END.search(text, end, end + 600)
    return begin, after.end() if after else min(len(text), end + 600)


def sentence_of(text: str, start: int, end: int) -> str:
    begin, stop = sentence_span(text, start, end)
    return text[begin:stop]


def _says(words: set[str], wanted: tuple[str, ...]) -> bool:
    return any(w[:-1] and any(x.startswith(w[:-1]) for x in words) if w.endswith("*")
               else w in words for w in wanted)


def _meets(hit: Hit, text: str) -> bool:
    """Whether an entry's `with=` / `unless=` words are (not) in the hit's sentence."""
    term = hit.term
    words = set(WORD.findall(normalise(sentence_of(text, hit.start, hit.end))))
    return (not term.companions or _says(words, term.companions)) and not _says(
        words, term.unless)


def kind_of(entry: str) -> str:
    if entry.startswith("re:"):
        return "regex"
    if entry.endswith("*"):
        return "stem"
    return "phrase" if len(WORD.findall(normalise(entry))) > 1 else "word"


def load(folder: Path, categories: Iterable[str] | None = None) -> Lexicon:
    """Every `<category>.txt` in the folder (and `allow.txt`); errors name file and line."""
    lexicon = Lexicon()
    allow: set[str] = set()
    for path in sorted(folder.glob("*.txt")):
        category = path.stem
        if categories is not None and category not in categories and category != "allow":
            continue
        default = "medium"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if m := re.match(r"#\s*severity\s*:\s*(\w+)", line.strip(), re.I):
                default = m.group(1).lower()
                if default not in SEVERITIES:
                    raise LexiconError(f"{path}: line {number}: default severity must be low, "
                                       "medium or high")
                continue
            try:
                parsed = parse_line(line, default)
                if parsed is None:
                    continue
                entry = parsed.entry
                kind = kind_of(entry)
                if kind == "regex":
                    re.compile(entry[3:])
                elif not WORD.findall(normalise(entry.rstrip("*"))):
                    raise ValueError("has no letters to match")
            except (ValueError, re.error) as e:
                raise LexiconError(f"{path}: line {number}: {e}") from None
            if category == "allow":
                allow.update(WORD.findall(normalise(entry)))
                continue
            text = entry[3:] if kind == "regex" else entry
            lexicon.add(Term(f"{category}:{number}", text, category, parsed.severity, kind,
                             parsed.tags, parsed.companions, parsed.unless))
    lexicon.allow = frozenset(allow)
    lexicon.matcher  # noqa: B018 -- compile now, in the caller's (loading) thread
    return lexicon


DICTIONARIES = (Path("/usr/share/dict/british-english"), Path("/usr/share/dict/words"))


def lint(lexicon: Lexicon, dictionary: Iterable[str]) -> tuple[list[str], list[str]]:
    """(problems, notes) for IT before a list goes live. Problems: the same entry twice, entries
    the allowlist cancels, stems or patterns that reach a name in the dictionary (`wank*` flags
    "Wankel": the Scunthorpe problem). Notes: the other words a stem reaches, to review."""
    problems: list[str] = []
    notes: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for term in lexicon.terms:
        key = (term.kind, normalise(term.text))
        if key in seen:
            problems.append(f"{term.id}: duplicate of {seen[key]} ({term.text!r})")
        seen.setdefault(key, term.id)
        words = WORD.findall(normalise(term.text.rstrip("*")))
        if term.kind in ("word", "stem") and words and words[0] in lexicon.allow:
            problems.append(f"{term.id}: {term.text!r} is also in the allowlist, so never matches")
    listed = {normalise(t.text) for t in lexicon.terms if t.kind == "word"}
    entries = [w for w in dictionary if w.isalpha()]
    names = {normalise(w) for w in entries if w[:1].isupper()} - listed - lexicon.allow
    words = {normalise(w) for w in entries if not w[:1].isupper()} - listed - lexicon.allow
    for key, terms in lexicon.matcher.stems.items():
        stem = key.decode()
        for term in terms:
            named = sorted(w for w in names if w.startswith(stem))
            caught = sorted(w for w in words if w.startswith(stem) and w != stem)
            if named:
                problems.append(f"{term.id}: {term.text!r} would flag names: {', '.join(named)}"
                                " (list the exact forms instead, or allow the names)")
            if caught:
                notes.append(f"{term.id}: {term.text!r} also reaches {', '.join(caught[:8])}"
                             + (" …" if len(caught) > 8 else ""))
    for pattern, term in lexicon.matcher.regexes:
        named = sorted(w for w in names | words if pattern.search(w))
        if named:
            problems.append(f"{term.id}: regex {term.text!r} matches dictionary words: "
                            f"{', '.join(named[:8])}")
    return problems, notes


def explain(lists: Lexicon, sources: Iterable[tuple[str, str, bool]]) -> list[dict[str, str]]:
    """Every match in each (where, text, quoted) source with the normalisation that found
    it: what `wordlists test` prints and the desk's term page shows."""
    rows = []
    for where, text, _ in sources:
        written = readable(text)
        for hit in lists.scan(text):
            rows.append({"where": where, "category": hit.term.category, "term": hit.term.id,
                         "entry": hit.term.text, "severity": hit.term.severity, "how": hit.how,
                         "matched": written[hit.start:hit.end]})
    return rows
