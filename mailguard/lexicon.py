"""Wordlist files → a compiled matcher that finds words and phrases, not substrings.

Text is normalised in whole-text passes that run in C (NFKC, case folding, zero-width and
homoglyph folding with str.translate), split into words with one findall, and matched by set
intersection, so the cost per megabyte does not grow with the number of terms. Python touches
only the rare words that need more: leetspeak, spaced-out letters, stretched letters.

List format (one entry a line, `#` comments):
    word                    the word alone (Scunthorpe, Essex, classic never match "ass")
    word*                   the word and words that start with it (stems)
    two words               a phrase: the words in order, with anything but letters between
    re:PATTERN              a regular expression over normalised text, explicitly marked
    ... ; severity=high     low | medium | high (default: the file's, else medium)
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SEVERITIES = ("low", "medium", "high")
WORD = re.compile(r"[^\W_]+")
MIXED = re.compile(r"[^\W_]*[0-9$@|!][\w$@|!]*")       # a word with digits or symbols in it
# f.u.c.k, f u c k, f-u-c-k: single letters joined by one and the same separator
SPACED = re.compile(r"(?<![^\W_])[^\W_]([ .\-_*])(?:[^\W_]\1){1,18}[^\W_](?![^\W_])")
STRETCHED = re.compile(r"([^\W\d_])\1{2,}")                # fuuuuck

ZERO_WIDTH = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff\u180e"), None)
HOMOGLYPHS = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "ӏ": "l", "ё": "e", "ї": "i",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "γ": "y", "μ": "u",
})
_ZERO_WIDTH_ANY = re.compile("[" + "".join(map(chr, ZERO_WIDTH)) + "]")
_HOMOGLYPH_ANY = re.compile("[" + "".join(map(chr, HOMOGLYPHS)) + "]")
LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "0": "o", "1": "i", "!": "i", "|": "l",
                      "$": "s", "5": "s", "7": "t", "8": "b", "9": "g"})


class LexiconError(ValueError):
    """A wordlist line that cannot be used, worded `file: line N: problem`."""


@dataclass(frozen=True)
class Term:
    id: str           # "category:line": stable enough for stats, never the word itself
    text: str         # as written in the list
    category: str
    severity: str
    kind: str         # "word", "stem", "phrase", "regex"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    term: Term
    start: int        # offsets in the normalised text
    end: int
    how: str          # which normalisation found it: "plain", "leet", "spaced", "stretched"


def normalise(text: str) -> str:
    """The form both lists and mail are matched in: NFKC, case-folded, without zero-width
    characters, HTML entities decoded, look-alike Cyrillic and Greek letters folded to Latin."""
    if "&" in text:
        text = html.unescape(text)
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text)
    if _ZERO_WIDTH_ANY.search(text):  # str.translate is slow on non-ASCII text: only if needed
        text = text.translate(ZERO_WIDTH)
    text = text.casefold()
    if _HOMOGLYPH_ANY.search(text):
        text = text.translate(HOMOGLYPHS)
    return text


@dataclass
class Lexicon:
    words: dict[str, list[Term]] = field(default_factory=dict)
    stems: dict[str, list[Term]] = field(default_factory=dict)
    phrases: dict[str, list[tuple[tuple[str, ...], Term]]] = field(default_factory=dict)
    regexes: list[tuple[re.Pattern[str], Term]] = field(default_factory=list)
    allow: frozenset[str] = frozenset()
    terms: list[Term] = field(default_factory=list)

    @property
    def stem_lengths(self) -> tuple[int, ...]:
        return tuple(sorted({len(s) for s in self.stems}))

    def add(self, term: Term) -> None:
        self.terms.append(term)
        if term.kind == "regex":
            self.regexes.append((re.compile(term.text), term))
            return
        words = WORD.findall(normalise(term.text.rstrip("*")))
        if term.kind == "phrase":
            self.phrases.setdefault(words[0], []).append((tuple(words), term))
        elif term.kind == "stem":
            self.stems.setdefault(words[0], []).append(term)
        else:
            self.words.setdefault(words[0], []).append(term)

    def _candidates(self, text: str) -> dict[str, tuple[str, str]]:
        """Every word to look up → (how it was found, the text as written); C-level passes,
        Python only for the oddities."""
        found = {w: ("plain", w) for w in set(WORD.findall(text))}
        for token in set(MIXED.findall(text)):
            if any(c.isalpha() for c in token):  # "sh1t" yes; "2024" and "455" stay numbers
                for variant in {token.translate(LEET), token.replace("1", "l").translate(LEET)}:
                    for w in WORD.findall(variant):
                        found.setdefault(w, ("leet", token))
        for m in SPACED.finditer(text):
            letters = m.group(0)[::2]  # "a f u c k" → "afuck": try every run of 3 or more
            for i in range(len(letters) - 2):
                for j in range(i + 3, len(letters) + 1):
                    found.setdefault(letters[i:j], ("spaced", m.group(0)))
        for word, (_, written) in [(w, v) for w, v in found.items() if STRETCHED.search(w)]:
            for repl in (r"\1", r"\1\1"):
                found.setdefault(STRETCHED.sub(repl, word), ("stretched", written))
        return found

    def scan(self, raw_text: str) -> list[Hit]:
        """Every listed word, stem, phrase or pattern in the text, after normalisation."""
        text = normalise(raw_text)
        candidates = self._candidates(text)
        hits: list[Hit] = []
        for word in candidates.keys() & self.words.keys():
            if word not in self.allow:
                hits += self._place(text, self.words[word], *candidates[word])
        for length in self.stem_lengths:
            present = {w[:length] for w in candidates if len(w) >= length} & self.stems.keys()
            for stem in present:  # rare: only now look at the words themselves
                for word, (how, written) in candidates.items():
                    if word.startswith(stem) and word not in self.allow:
                        hits += self._place(text, self.stems[stem], how, written)
        for head in candidates.keys() & self.phrases.keys():
            for words, term in self.phrases[head]:
                if all(w in candidates for w in words):
                    hits += self._phrase(text, words, term)
        for pattern, term in self.regexes:
            hits += [Hit(term, m.start(), m.end(), "regex") for m in pattern.finditer(text)]
        first: dict[str, Hit] = {}
        for hit in hits:  # one hit per term: "fuck", "fuckin", "fucking" are one finding
            first.setdefault(hit.term.id, hit)
        return list(first.values())

    @staticmethod
    def _phrase(text: str, words: tuple[str, ...], term: Term) -> list[Hit]:
        """Where a phrase stands: the words in order with only non-letters between, in the
        text as it is or, failing that, with leetspeak read as letters ("k1ll you")."""
        pattern = re.compile(r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, words))
                             + r"(?![^\W_])")
        for how, variant in (("plain", text), ("leet", text.translate(LEET))):
            found = [Hit(term, m.start(), m.end(), how) for m in pattern.finditer(variant)]
            if found:
                return found
        return []

    @staticmethod
    def _place(text: str, terms: list[Term], how: str, written: str) -> list[Hit]:
        """Where the word stands, as written (its first place in the text)."""
        m = re.search(r"(?<![^\W_])" + re.escape(written) + r"(?![^\W_])", text)
        at = m.start() if m else text.find(written)
        start, end = (at, at + len(written)) if at >= 0 else (0, 0)
        return [Hit(t, start, end, how) for t in terms]


_OPTION = re.compile(r";\s*(\w+)\s*=\s*([\w,-]+)\s*$")


def parse_line(line: str, default_severity: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(entry, severity, tags) from one list line, or None for blanks and comments."""
    line = line.split(" #")[0].strip() if not line.lstrip().startswith("re:") else line.strip()
    if not line or line.startswith("#"):
        return None
    severity, tags = default_severity, ()
    while m := _OPTION.search(line):
        key, value = m.group(1).lower(), m.group(2).lower()
        if key == "severity":
            if value not in SEVERITIES:
                raise ValueError(f"severity must be low, medium or high, not {value!r}")
            severity = value
        elif key == "tags":
            tags = tuple(v for v in value.split(",") if v)
        else:
            raise ValueError(f"unknown option {key!r} (severity, tags)")
        line = line[:m.start()].rstrip()
    return line, severity, tags


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
                entry, severity, tags = parsed
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
            lexicon.add(Term(f"{category}:{number}", text, category, severity, kind, tags))
    lexicon.allow = frozenset(allow)
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
    for stem, terms in lexicon.stems.items():
        for term in terms:
            named = sorted(w for w in names if w.startswith(stem))
            caught = sorted(w for w in words if w.startswith(stem) and w != stem)
            if named:
                problems.append(f"{term.id}: {term.text!r} would flag names: {', '.join(named)}"
                                " (list the exact forms instead, or allow the names)")
            if caught:
                notes.append(f"{term.id}: {term.text!r} also reaches {', '.join(caught[:8])}"
                             + (" …" if len(caught) > 8 else ""))
    for pattern, term in lexicon.regexes:
        named = sorted(w for w in names | words if pattern.search(w))
        if named:
            problems.append(f"{term.id}: regex {term.text!r} matches dictionary words: "
                            f"{', '.join(named[:8])}")
    return problems, notes
