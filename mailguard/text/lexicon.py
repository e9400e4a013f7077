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
    ... ; scope=message     `with=`/`unless=` look at the whole message, not the sentence
    ... ; with=@same        another entry of the same list in the message (@any: any list)
    ... ; roles=pupil       only in mail to a recipient the directory lists with that role
    # heading: bullying     the safeguarding heading for the file's findings (HEADINGS)
    # near: yes             also read dropped, swapped and split letters in the lines below
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailguard.school.directory import ROLES
from mailguard.text.matcher import WORD, Dictionary, Hit, Matcher, Term, normalise, readable

__all__ = [
    "Hit",
    "Lexicon",
    "LexiconError",
    "Term",
    "excerpt",
    "explain",
    "lint",
    "load",
    "normalise",
    "readable",
]

SEVERITIES = ("low", "medium", "high")
ANCHOR = "anchor:"   # the category prefix of terms folded in from the rules (Lexicon.folded)
# The UK Safer Internet Centre's "appropriate monitoring" headings that a designated
# safeguarding lead works with, and "none" for what the policies forbid without one
# (profanity that targets no one, chain letters).
HEADINGS = ("bullying", "child sexual exploitation", "discrimination",
            "drugs and substance abuse", "extremism", "gambling", "grooming", "pornography",
            "self-harm", "suicide", "violence", "none")
# For lists without a `# heading:` line (a trust's own older folder).
DEFAULT_HEADINGS = {"discriminatory": "discrimination", "threats": "violence",
                    "harassment": "bullying", "extremism": "extremism", "gambling": "gambling",
                    "sexual": "pornography", "drugs": "drugs and substance abuse",
                    "selfharm": "self-harm", "suicide": "suicide",
                    "exploitation": "child sexual exploitation", "grooming": "grooming"}


class LexiconError(ValueError):
    """A wordlist line that cannot be used, worded `file: line N: problem`."""


@dataclass
class Lexicon:
    """The entries as listed (for lint and the tools) and, once built, their matcher."""
    allow: frozenset[str] = frozenset()
    terms: list[Term] = field(default_factory=list)
    dictionary: Dictionary | None = field(default=None, repr=False)   # near forms, if given
    # Terms found in the same pass but not listed here: the rules' anchors (rules.py), so the
    # text is read once for both. Their categories start with ANCHOR.
    folded: list[Term] = field(default_factory=list, repr=False)
    _matcher: Matcher | None = field(default=None, repr=False)

    def add(self, term: Term) -> None:
        self._matcher = None
        self.terms.append(term)

    @property
    def matcher(self) -> Matcher:
        """Compiled on first use; load() builds it at once, in the loading thread."""
        if self._matcher is None:
            self._matcher = Matcher(self.terms + self.folded, self.allow, self.dictionary)
        return self._matcher

    def scan(self, text: str) -> list[Hit]:
        """Every listed word, stem, phrase or pattern in the text; offsets count in
        readable(text), the text with HTML entities decoded. An entry with conditions
        (`with=`, `unless=`) counts only where its sentence meets them."""
        return self.scan_folded(text)[0]

    def scan_folded(self, text: str) -> tuple[list[Hit], list[Hit]]:
        """(the listed hits, as scan gives them; the folded terms' hits), in one pass."""
        written = readable(text)
        hits = self.matcher.scan(written)
        folded = [h for h in hits if h.term.category.startswith(ANCHOR)] if self.folded else []
        if folded:
            hits = [h for h in hits if not h.term.category.startswith(ANCHOR)]
        if any(h.term.companions or h.term.unless for h in hits):
            hits = [h for h in hits if not (h.term.companions or h.term.unless)
                    or h.term.scope == "message" or _meets(h, written)]
        return hits, folded


_OPTION = re.compile(r";\s*(\w+)\s*=\s*([\w,'*@-]+)\s*$")
# `with=` values that are no word: another entry of the same list, or any listed entry,
# anywhere in the message (as school monitoring lists say "with another term of the same
# type" and "with any term").
OTHER_ENTRIES = ("@same", "@any")
SENTENCE_END = re.compile(r"[.!?;]+(?:\s|$)|\n\s*\n")


@dataclass(frozen=True)
class Line:
    """One list entry as written: the entry and its options."""

    entry: str
    severity: str
    tags: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    scope: str = "sentence"


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
        elif key in ("tags", "with", "unless", "roles"):
            words = tuple(v for v in value.split(",") if v)
            odd = [w for w in words if "@" in w and (key != "with" or w not in OTHER_ENTRIES)]
            if odd:
                raise ValueError(f"{odd[0]!r}: only with= takes @same or @any")
            if any(w in OTHER_ENTRIES for w in words):
                options["scope"] = "message"   # other entries are looked for message-wide
            if key == "roles" and set(words) - set(ROLES):
                raise ValueError(f"roles must be among {', '.join(ROLES)}, not {value!r}")
            options["companions" if key == "with" else key] = words
        elif key == "scope":
            if value not in ("sentence", "message"):
                raise ValueError(f"scope must be sentence or message, not {value!r}")
            options["scope"] = value
        else:
            raise ValueError(f"unknown option {key!r} (severity, tags, with, unless, scope, "
                             "roles)")
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
               else w in words for w in wanted if w not in OTHER_ENTRIES)


def _meets(hit: Hit, text: str, words: set[str] | None = None,
           others: Iterable[Hit] = ()) -> bool:
    """Whether an entry's `with=` / `unless=` words are (not) in the hit's sentence (or in
    `words`, the whole message's, for `scope=message`); `@same` and `@any` ask `others`,
    the message's other hits."""
    term = hit.term
    companions = () if hit.how == "joined" else term.companions  # "youidiot": "you" is in it
    if words is None:
        words = set(WORD.findall(normalise(sentence_of(text, hit.start, hit.end))))
    met = not companions or _says(words, companions) or any(
        o.term.id != term.id and ("@any" in companions or (
            "@same" in companions and o.term.category == term.category))
        and not set(o.term.companions) & set(OTHER_ENTRIES)   # two such never vouch for
        for o in others)                                      # each other
    return met and not _says(words, term.unless)


def in_message(hits: Iterable[Hit], texts: Iterable[str],
               everything: Iterable[Hit] | None = None) -> list[Hit]:
    """The `scope=message` hits whose `with=`/`unless=` words are (not) anywhere in the
    message's texts, and whose `@same`/`@any` find another entry among `everything` (the
    message's hits from all its texts; these hits if not given); other hits as they are."""
    hits = list(hits)
    if not any(h.term.scope == "message" for h in hits):
        return hits
    words = {w for text in texts for w in WORD.findall(normalise(text))}
    others = hits if everything is None else list(everything)
    return [h for h in hits if h.term.scope != "message" or _meets(h, "", words, others)]


def kind_of(entry: str) -> str:
    if entry.startswith("re:"):
        return "regex"
    if entry.endswith("*"):
        return "stem"
    return "phrase" if len(WORD.findall(normalise(entry))) > 1 else "word"


def dictionary() -> Dictionary | None:
    """The system's word list (wbritish), which near forms need; None where there is none.
    Read once per process (and again if the file changes), so a reload does not pay."""
    found = next((d for d in DICTIONARIES if d.exists()), None)
    return _dictionary(found, found.stat().st_mtime_ns) if found else None


@functools.lru_cache(maxsize=1)
def _dictionary(path: Path, _mtime: int) -> Dictionary:
    return Dictionary(path.read_text(encoding="utf-8", errors="replace").split())


def load(folder: Path, categories: Iterable[str] | None = None, near: bool = True,
         folded: Iterable[Term] = (), every: bool = False) -> Lexicon:
    """Every `<category>.txt` in the folder (and `allow.txt`); errors name file and line.
    With `near`, dropped, swapped and split letters are read too (where a word list is);
    `folded` terms are found in the same pass (see Lexicon.folded); with `every`, each
    entry's every place is reported, not its first only (the rules' slot lists)."""
    lexicon = Lexicon(dictionary=dictionary() if near else None, folded=list(folded))
    allow: set[str] = set()
    for path in sorted(folder.glob("*.txt")):
        category = path.stem
        if categories is not None and category not in categories and category != "allow":
            continue
        default = "medium"
        heading = DEFAULT_HEADINGS.get(category, "none")
        near = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if m := re.match(r"#\s*severity\s*:\s*(\w+)", line.strip(), re.I):
                default = m.group(1).lower()
                if default not in SEVERITIES:
                    raise LexiconError(f"{path}: line {number}: default severity must be low, "
                                       "medium or high")
                continue
            if m := re.match(r"#\s*near\s*:\s*(\w+)\s*$", line.strip(), re.I):
                if m.group(1).lower() not in ("yes", "no"):
                    raise LexiconError(f"{path}: line {number}: near must be yes or no")
                near = m.group(1).lower() == "yes"
                continue
            if m := re.match(r"#\s*heading\s*:\s*(.+?)\s*$", line.strip(), re.I):
                heading = m.group(1).lower()
                if heading not in HEADINGS:
                    raise LexiconError(f"{path}: line {number}: heading must be one of "
                                       f"{', '.join(HEADINGS)}")
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
                elif kind == "stem" and len(WORD.findall(normalise(entry.rstrip("*")))) > 1:
                    raise ValueError("a stem (word*) is one word: list each form of a phrase")
            except (ValueError, re.error) as e:
                raise LexiconError(f"{path}: line {number}: {e}") from None
            if category == "allow":
                allow.update(WORD.findall(normalise(entry)))
                continue
            text = entry[3:] if kind == "regex" else entry
            lexicon.add(Term(f"{category}:{number}", text, category, parsed.severity, kind,
                             parsed.tags, parsed.companions, parsed.unless, heading,
                             parsed.roles, parsed.scope, near, every))
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
            if term.category.startswith(ANCHOR):
                continue   # the rules' own words: `wordlists lint` reads rules/ apart
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


def excerpt(text: str, hit: Any) -> str:
    """A short context with the matched words masked (a Hit or a rule's hit: anything with
    start and end in `text`): enough for the DPO to judge, in the quarantine record only."""
    word = text[hit.start:hit.end]
    masked = word[:1] + "*" * max(len(word) - 1, 0)
    before = " ".join(text[max(0, hit.start - 40):hit.start].split()[-5:])
    after = " ".join(text[hit.end:hit.end + 40].split()[:5])
    return f"…{before} {masked} {after}…"


def companion(hit: Hit, text: str, words: set[str] | None = None) -> str:
    """The `with=` word that let an entry count in its sentence (or message), for IT."""
    if not hit.term.companions:
        return ""
    if words is None:
        words = set(WORD.findall(normalise(sentence_of(text, hit.start, hit.end))))
    return next((w for w in hit.term.companions if _says(words, (w,))), next(
        (w for w in hit.term.companions if w in OTHER_ENTRIES), ""))


def explain(lists: Lexicon, sources: Iterable[tuple[str, str, bool]]) -> list[dict[str, str]]:
    """Every match in each (where, text, quoted) source with the normalisation that found
    it, the companion word that let it count, and the recipients it is kept for: what
    `wordlists test` prints and the desk's term page shows."""
    sources = list(sources)
    texts = [text for _, text, _ in sources]
    message = {w for text in texts for w in WORD.findall(normalise(text))}
    scanned = [lists.scan(text) for text in texts]
    everything = [h for hits in scanned for h in hits]
    rows = []
    for (where, text, _), hits in zip(sources, scanned, strict=True):
        written = readable(text)
        for hit in in_message(hits, texts, everything):
            with_ = companion(hit, written, message if hit.term.scope == "message" else None)
            how = hit.how + (f", with {with_!r}" if with_ else "") + (
                f", only to {'/'.join(hit.term.roles)}" if hit.term.roles else "")
            rows.append({"where": where, "category": hit.term.category, "term": hit.term.id,
                         "entry": hit.term.text, "severity": hit.term.severity, "how": how,
                         "heading": hit.term.heading,
                         "matched": written[hit.start:hit.end]})
    return rows
