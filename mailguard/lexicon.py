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
    start: int        # offsets in readable(text): the text with HTML entities decoded
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


_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


def _table(keep: bytes, other: bytes = b" ", high: bool = True) -> bytes:
    """A bytes.translate table: ASCII letters lower-cased, `keep` kept, the rest → `other`;
    UTF-8 bytes kept (when `high`) so that a non-ASCII word reaches the careful path whole."""
    table = bytearray(other * 256)
    for b in keep:
        table[b] = b
    for b in range(65, 91):
        table[b] = table[b + 32]
    if high:
        table[128:] = bytes(range(128, 256))
    return bytes(table)


ALNUM = b"abcdefghijklmnopqrstuvwxyz0123456789"
TOKENS = _table(ALNUM + b"$@|!")         # words with any leetspeak symbols still in them
WORDS = _table(ALNUM)                    # words alone
SEPARATORS = b" .-_*"
WORD_BYTES = frozenset(ALNUM + bytes(range(128, 256)))
SHAPE = bytes(97 if chr(b).isascii() and chr(b).isalnum() else 115 if b in SEPARATORS
              else 35 for b in range(256))  # letters and digits → a, separators → s, else #
LEET_BYTES = bytes.maketrans(b"4@301!|$5789", b"aaeoiilsstbg")  # as LEET, for bytes
DIGITS_AND_SYMBOLS = b"0123456789$@|!"
SPACED_BYTES = re.compile(rb"[a-z0-9]([ .\-_*])(?:[a-z0-9]\1){1,18}[a-z0-9](?![a-z0-9])", re.I)
STRETCH_BYTES = re.compile(rb"([a-z])\1\1")    # where to look (fast) ...
STRETCHED_RUN = re.compile(rb"([a-z])\1{2,}")   # ... and what to squeeze there


def trie_pattern(words: Iterable[bytes]) -> bytes:
    """One regex alternation shaped as a trie (shared prefixes written once), so the regex
    engine tests a handful of first letters per word, not every entry."""
    trie: dict = {}
    for word in words:
        node = trie
        for b in word:
            node = node.setdefault(b, {})
        node[-1] = {}

    def walk(node: dict) -> bytes:
        ends = -1 in node
        branches = [re.escape(bytes([b])) + walk(child) for b, child in sorted(node.items())
                    if b != -1]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        if ends:
            return (b"(?:" + body + b")?") if len(branches) == 1 else body + b"?"
        return body
    return walk(trie)


@dataclass
class _Index:
    """The lists in the shape the scan needs: byte strings, sets and one stem pattern."""
    words: dict[bytes, list[Term]]
    stems: dict[bytes, list[Term]]
    stem_pattern: re.Pattern[bytes] | None
    phrases: dict[bytes, list[tuple[tuple[bytes, ...], Term]]]
    allow: frozenset[bytes]


def readable(text: str) -> str:
    """The text with HTML entities decoded: what `Hit` offsets count in."""
    return html.unescape(text) if "&" in text else text


@dataclass
class Lexicon:
    words: dict[str, list[Term]] = field(default_factory=dict)
    stems: dict[str, list[Term]] = field(default_factory=dict)
    phrases: dict[str, list[tuple[tuple[str, ...], Term]]] = field(default_factory=dict)
    regexes: list[tuple[re.Pattern[str], Term]] = field(default_factory=list)
    allow: frozenset[str] = frozenset()
    terms: list[Term] = field(default_factory=list)
    _compiled: _Index | None = field(default=None, repr=False)

    def add(self, term: Term) -> None:
        self._compiled = None
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

    @property
    def index(self) -> _Index:
        if self._compiled is None:
            stems = {k.encode(): v for k, v in self.stems.items()}
            self._compiled = _Index(
                words={k.encode(): v for k, v in self.words.items()}, stems=stems,
                stem_pattern=re.compile(b" (" + trie_pattern(stems) + b")([^ ]*)")
                if stems else None,
                phrases={k.encode(): [(tuple(w.encode() for w in words), term)
                                      for words, term in v] for k, v in self.phrases.items()},
                allow=frozenset(w.encode() for w in self.allow))
        return self._compiled

    def scan(self, raw_text: str) -> list[Hit]:
        """Every listed word, stem, phrase or pattern in the text, after normalisation.

        The text is cut into its distinct words with bytes.translate and split, which run in C
        at hundreds of megabytes a second; Python then looks only at the few thousand distinct
        words, and at length only at the odd ones (non-ASCII, digits and symbols, spaced-out or
        stretched letters)."""
        text = readable(raw_text)
        data = text.encode("utf-8", "replace")
        tokens = set(data.translate(TOKENS).split())
        words = b" ".join(tokens).translate(WORDS)
        plain = set(words.split())
        found: dict[str, dict[bytes, bytes]] = {}   # how → {word: the text it was read from}
        if not data.isascii():
            found["unicode"] = self._unicode(plain)
        odd = tokens.difference(filter(bytes.isalpha, tokens))
        if mixed := odd.difference(filter(bytes.isdigit, odd)):
            found["leet"] = self._leet(list(mixed), plain)
        found["spaced"] = self._spaced(data)
        found["stretched"] = self._stretched(words)
        index = self.index
        matched: dict[str, tuple[Term, str, bytes]] = {}  # term id → first way it was found
        for how, variants, joined in (("plain", None, words), *(
                (how, v, b" ".join(v)) for how, v in found.items() if v)):
            keys = plain if variants is None else variants.keys()
            for word in (keys & index.words.keys()) - index.allow:
                for term in index.words[word]:
                    matched.setdefault(term.id, (term, how, variants[word] if variants else word))
            if index.stem_pattern is not None:
                for m in index.stem_pattern.finditer(b" " + joined):
                    word = m.group(1) + m.group(2)
                    if word not in index.allow:
                        for term in index.stems[m.group(1)]:
                            matched.setdefault(term.id, (
                                term, how, variants[word] if variants else word))
        everything = plain.union(*found.values())
        phrases = [(words, term) for head in everything & index.phrases.keys()
                   for words, term in index.phrases[head] if everything.issuperset(words)]
        if not matched and not phrases and not self.regexes:
            return []
        placer = _Placer(text, data)
        hits = [placer.word(term, how, written) for term, how, written in matched.values()]
        leet, odd_letters = found.get("leet", {}), found.get("unicode", {})
        hits += [hit for words, term in phrases if (hit := placer.phrase(
            words, term, any(w in leet for w in words), any(w in odd_letters for w in words)))]
        hits += [hit for pattern, term in self.regexes
                 if (hit := placer.normalised(term, pattern, "regex"))]
        return hits

    @staticmethod
    def _unicode(plain: set[bytes]) -> dict[bytes, bytes]:
        """Words with non-ASCII letters, through the full normalisation: NFKC, case folding,
        zero-width characters and look-alike letters ("ѕhit" with a Cyrillic dze). Words that
        were there as written ("café", "don’t" → "don") join `plain`; the rest are returned.
        All are normalised in one call, a line each (no normalisation makes or eats lines)."""
        out: dict[bytes, bytes] = {}
        tokens = [t for t in plain if not t.isascii()]
        written = [t.decode("utf-8", "replace") for t in tokens]
        normalised = normalise("\n".join(written)).split("\n")
        for token, as_written, form in zip(tokens, written, normalised, strict=True):
            as_written = as_written.lower()
            for word in WORD.findall(form):
                if word in as_written:
                    plain.add(word.encode())
                else:
                    out.setdefault(word.encode(), token)
        return out

    @staticmethod
    def _leet(mixed: list[bytes], plain: set[bytes]) -> dict[bytes, bytes]:
        """Words with digits or $@|! read as letters ("sh1t", "$h!t"); numbers stay numbers.
        All tokens are translated at once; the mapping keeps their count and order."""
        mixed = [t for t in mixed if t.translate(None, DIGITS_AND_SYMBOLS)]  # not "2024"
        joined = b" ".join(mixed)
        out: dict[bytes, bytes] = {}
        for variant in (joined, joined.replace(b"1", b"l")):
            for token, word in zip(mixed, variant.translate(LEET_BYTES).split(b" "),
                                   strict=True):
                if word not in plain:
                    out.setdefault(word, token)
        return out

    @staticmethod
    def _spaced(data: bytes) -> dict[bytes, bytes]:
        """Letters spaced out with one repeated separator: f.u.c.k, f u c k, f-u-c-k. Found by
        searching a shape of the text (letter → a, separator → s, other → #) for a single
        letter and two more after separators, then read with a regex there alone."""
        out: dict[bytes, bytes] = {}
        shape = b"#" + data.translate(SHAPE)
        for needle in (b"sasasa", b"#asasa"):
            at = shape.find(needle)
            while at >= 0:
                m = SPACED_BYTES.match(data, at)   # shape is one longer: `at` is the letter
                if m:
                    letters = m.group(0)[::2].translate(_LOWER)
                    for i in range(len(letters) - 2):
                        for j in range(i + 3, len(letters) + 1):
                            out.setdefault(letters[i:j], m.group(0))
                    at = m.end()
                at = shape.find(needle, at + 1)
        return out

    @staticmethod
    def _stretched(words: bytes) -> dict[bytes, bytes]:
        """Words with a letter three or more times over ("fuuuuck") → with it once and twice."""
        out: dict[bytes, bytes] = {}
        for m in STRETCH_BYTES.finditer(words):
            start = words.rfind(b" ", 0, m.start()) + 1
            end = words.find(b" ", m.end())
            token = words[start:end if end >= 0 else len(words)]
            for repl in (rb"\1", rb"\1\1"):
                out.setdefault(STRETCHED_RUN.sub(repl, token), token)
        return out


class _Placer:
    """Where found words stand in the text as written (after HTML entities), for the excerpt
    the DPO reads. Runs only for the few terms that matched, over bytes with ASCII letters
    lower-cased (same length), converting the byte offset to a character offset at the end."""

    def __init__(self, text: str, data: bytes) -> None:
        self.text = text
        self.data = data
        self.lowered = data.translate(_LOWER)
        self._leet: bytes | None = None
        self._normalised: str | None = None

    def _alone(self, data: bytes, start: int, end: int) -> bool:
        """Not inside a longer word: the bytes either side are not letters or digits."""
        return (start == 0 or data[start - 1] not in WORD_BYTES) and (
            end >= len(data) or data[end] not in WORD_BYTES)

    def _find(self, data: bytes, pattern: re.Pattern[bytes]) -> tuple[int, int] | None:
        """The first place the pattern stands alone (the regex engine skips ahead to its
        first word by itself)."""
        for m in pattern.finditer(data):
            if self._alone(data, m.start(), m.end()):
                return m.span()
        return None

    def _hit(self, term: Term, start: int, end: int, how: str) -> Hit:
        at = len(self.data[:start].decode("utf-8", "replace"))
        return Hit(term, at, at + len(self.data[start:end].decode("utf-8", "replace")), how)

    def word(self, term: Term, how: str, written: bytes) -> Hit:
        written = written.translate(_LOWER)
        at = first = self.lowered.find(written)
        while at >= 0 and not self._alone(self.lowered, at, at + len(written)):
            at = self.lowered.find(written, at + 1)
        at = at if at >= 0 else first
        if at < 0:
            return Hit(term, 0, 0, how)
        return self._hit(term, at, at + len(written), how)

    def phrase(self, words: tuple[bytes, ...], term: Term, leet: bool,
               odd: bool) -> Hit | None:
        """The words in order with only non-letters between, in the text as it is or, when
        one of them was written in leetspeak, with it read as letters ("k1ll you"), or when
        one was written with look-alike letters, in the normalised text."""
        pattern = re.compile(rb"[^a-z0-9\x80-\xff]+".join(map(re.escape, words)))
        for how in ("plain", "leet") if leet else ("plain",):
            if how == "leet" and self._leet is None:
                self._leet = self.lowered.translate(LEET_BYTES)
            data = self.lowered if how == "plain" else self._leet or b""
            if found := self._find(data, pattern):
                return self._hit(term, *found, how)
        if not odd:
            return None
        return self.normalised(term, re.compile(r"[\W_]+".join(
            re.escape(w.decode("utf-8", "replace")) for w in words)), "unicode")

    def normalised(self, term: Term, pattern: re.Pattern[str], how: str) -> Hit | None:
        """The slow path, for phrases with look-alike letters and for regex entries: the
        whole text normalised (offsets are those of the normalised text, near enough)."""
        if self._normalised is None:
            self._normalised = normalise(self.text)
        for m in pattern.finditer(self._normalised):
            start, end = m.span()
            if how == "regex" or (not self._normalised[start - 1:start].isalnum() and
                                  not self._normalised[end:end + 1].isalnum()):
                return Hit(term, start, end, how)
        return None


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
