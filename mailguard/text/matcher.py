"""The compiled form of the wordlists, and the scan that runs them over mail text.

Two Hyperscan databases do the reading, each in one pass over the bytes in C:
  words      every listed word and stem as a literal (" word ", " stem") over the text with
             ASCII letters lower-cased and everything else turned into spaces; Hyperscan's
             literal compiler builds 10,000 terms in well under a second.
  detectors  phrases (their words with any non-letters between), and the places where the
             odd spellings are: non-ASCII letters, digits or symbols inside a word, letters
             spaced out with one separator, a letter three times over.
Python then reads only the few words around the detectors' places (NFKC and look-alike
folding, leetspeak, squeezing), and checks those against the same lists with sets.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import functools
import hashlib
import html
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import hyperscan

WORD = re.compile(r"[^\W_]+")

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
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_HOMOGLYPH_ANY = re.compile("[" + "".join(map(chr, HOMOGLYPHS)) + "]")
LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "0": "o", "1": "i", "!": "i", "|": "l",
                      "$": "s", "5": "s", "7": "t", "8": "b", "9": "g"})



def readable(text: str) -> str:
    """The text with HTML entities decoded: what `Hit` offsets count in."""
    return html.unescape(text) if "&" in text else text


def normalise(text: str) -> str:
    """The form both lists and mail are matched in: NFKC, case-folded, without accents or other
    combining marks and zero-width characters, HTML entities decoded, look-alike Cyrillic and
    Greek letters folded to Latin."""
    if "&" in text:
        text = html.unescape(text)
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text)
    decomposed = unicodedata.normalize("NFD", text)
    if _MARKS.search(decomposed):  # accents and Zalgo stacks: "tẃat", "café" → "cafe"
        text = _MARKS.sub("", decomposed)
    if _ZERO_WIDTH_ANY.search(text):  # str.translate is slow on non-ASCII text: only if needed
        text = text.translate(ZERO_WIDTH)
    text = text.casefold()
    if _HOMOGLYPH_ANY.search(text):
        text = text.translate(HOMOGLYPHS)
    return text




@dataclass(frozen=True)
class Term:
    id: str           # "category:line": stable enough for stats, never the word itself
    text: str         # as written in the list
    category: str
    severity: str
    kind: str         # "word", "stem", "phrase", "regex"
    tags: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()   # one must be in the same sentence (`; with=`)
    unless: tuple[str, ...] = ()       # none may be in the same sentence (`; unless=`)
    heading: str = "none"              # the safeguarding heading (`# heading:` in the list)
    roles: tuple[str, ...] = ()        # only in mail to these recipients (`; roles=pupil`)
    scope: str = "sentence"            # where `with=`/`unless=` look (`; scope=message`)
    near: bool = False                 # read near spellings too (`# near: yes` in the list)
    every: bool = False                # report every place, not the first (the rules' anchors)


@dataclass(frozen=True)
class Hit:
    term: Term
    start: int        # offsets in readable(text): the text with HTML entities decoded
    end: int
    how: str          # what led to it: plain, unicode, leet, spaced, stretched, masked, regex


_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
LETTERS = b"abcdefghijklmnopqrstuvwxyz"
ALNUM = LETTERS + b"0123456789"


def byte_table(keep: bytes, high: bool) -> bytes:
    """A bytes.translate table: ASCII letters lower-cased, `keep` kept, other ASCII → space,
    UTF-8 bytes kept or turned into spaces."""
    table = bytearray(b" " * 256)
    for b in keep:
        table[b] = b
    for b in range(65, 91):
        table[b] = table[b + 32]
    if high:
        table[128:] = bytes(range(128, 256))
    return bytes(table)


WORDS = byte_table(ALNUM, high=False)          # what the literal database reads
PHRASE_VIEW = byte_table(ALNUM, high=True)     # what the phrase database reads
TOKENS = byte_table(ALNUM + b"$@|!*#", high=True)  # where a word with odd spelling begins and ends
LEET_BYTES = bytes.maketrans(b"4@301!|$5789", b"aaeoiilsstbg")  # as text.LEET, for bytes
DIGITS_AND_SYMBOLS = b"0123456789$@|!"
CONTINUATION = bytes(1 if 0x80 <= b < 0xC0 else 0 for b in range(256))  # UTF-8 10xxxxxx
SEPARATORS = b" .-_*"
WORD_BYTES = frozenset(ALNUM + bytes(range(128, 256)))
SPACED = re.compile(rb"[a-z0-9]([ .\-_*])(?:[a-z0-9]\1){1,18}[a-z0-9](?![a-z0-9])", re.I)
CHUNK = 1 << 20   # characters read at once (see Matcher.scan)
# The databases compiled last, by what they were compiled from (Matcher._compile): enough
# for the lists' and the rules' five each, with room for the ones a reload replaces.
_BUILT: collections.OrderedDict[bytes, hyperscan.Database] = collections.OrderedDict()
_BUILT_LOCK = threading.Lock()
BUILT_KEPT = 15
EVERY = 16        # later places of an `every` term reported per scan (per MB read), at most
OVERLAP = 512     # read again past each seam: longer than any phrase or spaced-out word
STRETCHED = re.compile(rb"([a-z])\1{2,}")
BULK = 64   # places past which the distinct words may be read instead (see _Scan.bulk)
# Non-ASCII, except the punctuation every Outlook message is full of: ’ ‘ “ ” – — … • and
# the no-break space and £ (those cannot hide letters).
NON_ASCII = (rb"[\xc3-\xdf\xe0\xe1\xe3-\xf4]|\xc2[\x80-\x9f\xa1\xa2\xa4-\xbf]|\xe2[\x81-\xbf]"
             rb"|\xe2\x80[\x80-\x92\x95-\x97\x9a\x9b\x9e-\xa1\xa3-\xa5\xa7-\xbf]")
# Letters hidden behind * or # ("f*ck", "sh#t", "f**king", "b*****d"), inside a word or at its
# end: each mask stands for one letter of a listed word at least MASKED_MIN long.
MASKED = rb"[a-z][*#]+[a-z]|[a-z]{2}[*#]+(?:[^a-z0-9*#]|$)"
MASKED_MIN = 4
DETECTORS = {
    "unicode": [NON_ASCII],
    "masked": [MASKED],
    "spaced": [rb"\b[a-z0-9]" + re.escape(bytes([s])) + rb"[a-z0-9]" + re.escape(bytes([s]))
               + rb"[a-z0-9]" for s in SEPARATORS],
}
# Digits or symbols inside a word ("sh1t", "$hit"). A database of its own: in dense text (a
# line-numbered listing) its places are counted only until they show it is dense.
LEET_PLACE = rb"[a-z][0-9$@|]|[0-9$@|!][a-z]"
# A letter three times over ("fuuuck"), in a database of its own: where each run starts
# (another character, then the letter thrice), once per run. Reporting every place in
# "XXXXXXXX…" took 15 ms per 100 KB; dense text, where it would cost most, reads its
# distinct words instead and skips this pass.
LETTER_RUNS = [b"[^" + bytes([c]) + b"]" + bytes([c]) * 3 for c in range(97, 123)]

# The same tests as the detectors', on one lower-cased token, for the distinct-words path;
# the regex only where a test in C (no UTF-8 byte, no * or #) has not already said no.
_NON_ASCII_IN, _MASKED_IN = re.compile(NON_ASCII).search, re.compile(MASKED).search
TOKEN_KINDS: dict[str, Callable[[bytes], object]] = {
    "unicode": lambda token: not token.isascii() and _NON_ASCII_IN(token),
    "leet": re.compile(LEET_PLACE).search,
    "stretched": STRETCHED.search,
    "masked": lambda token: (b"*" in token or b"#" in token) and _MASKED_IN(token),
}


class Words:
    """A text in the phrase view (PHRASE_VIEW, between spaces), the form the personal lists
    and the wordlists' phrases are matched in. The last one made in each thread is kept:
    the language check and then the personal check read the very same text, and making it
    is a pass over every byte."""

    __slots__ = ("data",)
    _last = threading.local()

    def __init__(self, data: bytes) -> None:
        self.data = data

    @classmethod
    def of(cls, text: str) -> Words:
        last = getattr(cls._last, "pair", None)
        if last is not None and last[0] is text:
            return last[1]
        made = cls(b" " + text.encode("utf-8", "ignore").translate(PHRASE_VIEW) + b" ")
        cls._last.pair = (text, made)
        return made


def _once(m: re.Match[bytes]) -> bytes:
    """A run of one letter (STRETCHED) as the letter once. Functions, not templates (rb"\1"):
    Python 3.11 expands a template in Python at each match, three times slower."""
    return m[1]


def _twice(m: re.Match[bytes]) -> bytes:
    return m[1] * 2


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
        branches = [re.escape(bytes([b])) + walk(child) for b, child in sorted(node.items())
                    if b != -1]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        if -1 in node:
            return (b"(?:" + body + b")?") if len(branches) == 1 else body + b"?"
        return body
    return walk(trie)


NEAR_DROP = 5    # a dropped letter is read in listed words this long at least ("bastad")
NEAR_SWAP = 4    # two letters swapped ("fcuk"), and a space put inside ("f uck")
SHORT_WORDS = frozenset({b"a", b"i", b"o", b"u"})


def near_forms(word: bytes, stem: bool) -> dict[bytes, str]:
    """A listed word's near misspellings → how: one letter dropped, two next to each other
    swapped, a space put inside. For a stem, never past its last letter (a shorter prefix
    reaches other words: "fuc" would reach "fuchsia")."""
    out: dict[bytes, str] = {}
    last = len(word) - 1 if stem else len(word)
    if len(word) >= NEAR_DROP:
        for i in range(1, len(word) - 1):   # first and last stay: what readers go by
            out.setdefault(word[:i] + word[i + 1:], "dropped")
    if len(word) >= NEAR_SWAP:
        for i in range(last - 1):
            if word[i] != word[i + 1]:
                out.setdefault(word[:i] + word[i + 1:i + 2] + word[i:i + 1] + word[i + 2:],
                               "swapped")
        for i in range(1, last):
            out.setdefault(word[:i] + b" " + word[i:], "split")
    out.pop(word, None)
    return out


class Dictionary:
    """Real words (wbritish), so a near form that is a word ("bath" from "bath" swapped,
    "as shole" from parts that are words) is never read as a listed one."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = sorted({w.lower().encode() for w in words if w.isascii() and w.isalpha()})
        self._set = frozenset(self.words)

    def __contains__(self, word: bytes) -> bool:
        return word in self._set

    def starts(self, prefix: bytes) -> bool:
        """Whether a real word starts with `prefix`."""
        at = bisect.bisect_left(self.words, prefix)
        return at < len(self.words) and self.words[at].startswith(prefix)


class Matcher:
    """The lists compiled for scanning. Built once per (re)load, off the event loop; a scan
    may run in any thread (each thread gets its own Hyperscan scratch space)."""

    def __init__(self, terms: Iterable[Term], allow: Iterable[str],
                 dictionary: Dictionary | None = None) -> None:
        self.words: dict[bytes, list[Term]] = {}
        self.stems: dict[bytes, list[Term]] = {}
        self.phrases: dict[bytes, list[tuple[tuple[bytes, ...], Term]]] = {}
        self.regexes: list[tuple[re.Pattern[str], Term]] = []
        for term in terms:
            if term.kind == "regex":
                self.regexes.append((re.compile(term.text), term))
                continue
            words = tuple(w.encode() for w in WORD.findall(normalise(term.text.rstrip("*"))))
            if term.kind == "phrase":
                self.phrases.setdefault(words[0], []).append((words, term))
            else:
                (self.stems if term.kind == "stem" else self.words).setdefault(
                    words[0], []).append(term)
        self.allow = frozenset(w.encode() for w in allow)
        # For masked words: listed words by (first letter, length), and stems by first letter.
        self.maskable: dict[tuple[int, int], list[bytes]] = {}
        for w in self.words:
            if len(w) >= MASKED_MIN and w.isascii():
                self.maskable.setdefault((w[0], len(w)), []).append(w)
        self.maskable_stems: dict[int, list[bytes]] = {}
        for s in self.stems:
            if len(s) >= MASKED_MIN and s.isascii():
                self.maskable_stems.setdefault(s[0], []).append(s)
        self.phrase_words: dict[bytes, list[tuple[tuple[bytes, ...], Term]]] = {}
        for entries in self.phrases.values():
            for words, term in entries:
                for word in set(words):
                    self.phrase_words.setdefault(word, []).append((words, term))
        self.stem_pattern = re.compile(b" (" + trie_pattern(self.stems) + b")([^ ]*)") \
            if self.stems else None
        self.near = self._near(dictionary) if dictionary is not None else {}
        self._literals: list[tuple[str, bytes]] = [
            *(("word", w) for w in self.words if w.isascii()),
            *(("stem", s) for s in self.stems if s.isascii()),
            *(("near", n) for n in self.near)]
        literals = [b" " + w + (b"" if kind == "stem" or (kind == "near" and not self.near[w][2])
                                else b" ") for kind, w in self._literals]
        self._detectors: list[tuple[str, tuple[tuple[bytes, ...], Term] | None]] = [
            (name, None) for name, patterns in DETECTORS.items() for _ in patterns]
        patterns = [p for ps in DETECTORS.values() for p in ps]
        flags = [hyperscan.HS_FLAG_CASELESS] * len(patterns)
        # Phrases are read in PHRASE_VIEW, where whatever is not a letter, digit or UTF-8
        # byte is a space: " w1 +w2 " there is "w1, anything but letters, w2" as whole words,
        # and Hyperscan reads such patterns faster than ones with \b (5.9 -> 3.9 ms a MB).
        phrases: list[bytes] = []
        phrase_flags: list[int] = []
        for entries in self.phrases.values():
            for words, term in entries:
                if all(w.isascii() for w in words):
                    self._detectors.append(("phrase", (words, term)))
                    phrases.append(b" " + b" +".join(map(re.escape, words)) + b" ")
                    phrase_flags.append(0 if term.every else hyperscan.HS_FLAG_SINGLEMATCH)
        self._phrase_base = len(patterns)
        # Hyperscan compiles without the GIL: the databases are built side by side, which
        # takes a reload of 10,000 terms from about 1.0 s to 0.7 s on two cores.
        with ThreadPoolExecutor(4) as pool:
            # Every literal match, not the first only: "twaté twat" must not hide the second
            # behind the first, which the check around non-ASCII letters then turns down.
            built = [pool.submit(self._compile, literals, [0] * len(literals), True),
                     pool.submit(self._compile, patterns, flags, False),
                     pool.submit(self._compile, phrases, phrase_flags, False),
                     pool.submit(self._compile, LETTER_RUNS, [hyperscan.HS_FLAG_CASELESS] * 26,
                                 False),
                     pool.submit(self._compile, [LEET_PLACE], [hyperscan.HS_FLAG_CASELESS],
                                 False)]
            (self._literal_db, self._detector_db, self._phrase_db, self._runs_db,
             self._leet_db) = (b.result() for b in built)
        self._local = threading.local()

    def _near(self, dictionary: Dictionary) -> dict[bytes, tuple[bytes, str, bool]]:
        """Near forms of the listed words and stems (medium and high, from lists with
        `# near: yes`; no phrase or pattern) that are no real word, listed word or allowed
        word → (the listed form, how, whole word?); and "youidiot" for insults that need a
        "you" beside them. About ten literals a word: compiling them is the cost."""
        out: dict[bytes, tuple[bytes, str, bool]] = {}
        for table, stem in ((self.words, False), (self.stems, True)):
            for word, terms in table.items():
                if not word.isascii() or not any(t.near and t.severity != "low" for t in terms):
                    continue
                for form, how in near_forms(word, stem).items():
                    parts = form.split()
                    if (form in dictionary or form in self.words or form in self.allow
                            or (stem and (dictionary.starts(form) or (
                                self.stem_pattern is not None
                                and self.stem_pattern.match(b" " + form)))) or any(
                                p in SHORT_WORDS or p in self.words or (
                                    len(p) > 1 and p in dictionary)
                                for p in parts if len(parts) > 1)):
                        continue
                    out.setdefault(form, (word, how, not stem))
                if any(b"you" in (c.encode() for c in t.companions) for t in terms):
                    out.setdefault(b"you" + word, (word, "joined", not stem))
        return out

    @staticmethod
    def _compile(patterns: list[bytes], flags: list[int], literal: bool) -> hyperscan.Database:
        """A database for the patterns, or the one the last build made for the very same
        ones: editing one list leaves the other databases as they were, so a reload
        compiles only what changed."""
        key = hashlib.sha256(repr((literal, flags)).encode() + b"\0".join(patterns)).digest()
        with _BUILT_LOCK:
            if (db := _BUILT.get(key)) is not None:
                _BUILT.move_to_end(key)
                return db
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        if patterns:
            db.compile(expressions=patterns, ids=list(range(len(patterns))),
                       elements=len(patterns), flags=flags, literal=literal)
        with _BUILT_LOCK:
            _BUILT[key] = db
            while len(_BUILT) > BUILT_KEPT:
                _BUILT.popitem(last=False)
        return db

    def _scratches(self) -> tuple[hyperscan.Scratch | None, hyperscan.Scratch,
                                  hyperscan.Scratch, hyperscan.Scratch,
                                  hyperscan.Scratch | None]:
        found = getattr(self._local, "scratch", None)
        if found is None:
            found = self._local.scratch = (
                hyperscan.Scratch(self._literal_db) if self._literals else None,
                hyperscan.Scratch(self._detector_db), hyperscan.Scratch(self._runs_db),
                hyperscan.Scratch(self._leet_db),
                hyperscan.Scratch(self._phrase_db) if len(self._detectors) >
                self._phrase_base else None)
        return found

    def leet_places(self, data: bytes, scratch: hyperscan.Scratch, stop: int | None
                    ) -> list[int]:
        """Where digits or symbols meet letters; past `stop` places the scan halts (the
        text is dense, and its distinct words will be read instead)."""
        found: list[int] = []

        def place(_i: int, _f: int, to: int, _fl: int, _c: object) -> bool:
            found.append(to)
            return stop is not None and len(found) > stop

        with contextlib.suppress(hyperscan.ScanTerminated):
            self._leet_db.scan(data, match_event_handler=place, scratch=scratch)
        return found

    def scan(self, text: str) -> list[Hit]:
        """Every listed word, stem, phrase or pattern in the text (entities already decoded).

        Long text (a 25 MB spreadsheet's) is read in pieces of CHUNK characters cut at white
        space, each read OVERLAP characters past its end, so memory stays flat and a phrase
        across a seam is still found; the first place of each term is kept."""
        if len(text) <= CHUNK:
            return self._scan(text)
        hits: dict[str, Hit] = {}
        more: list[Hit] = []   # later places of `every` terms, up to EVERY per piece
        start = 0
        while start < len(text):
            end = _seam(text, start + CHUNK, start + CHUNK // 2)
            reach = _seam(text, end + OVERLAP, end)
            for hit in self._scan(text[start:reach]):
                placed = Hit(hit.term, hit.start + start, hit.end + start, hit.how)
                if hit.term.id not in hits:
                    hits[hit.term.id] = placed
                elif hit.term.every and hit.start < end - start:   # not the overlap again
                    more.append(placed)
            start = end
        return list(hits.values()) + more

    def _scan(self, text: str) -> list[Hit]:
        data = text.encode("utf-8", "replace")
        literal_scratch, detector_scratch, runs_scratch, leet_scratch, phrase_scratch = (
            self._scratches())
        raw: list[tuple[int, int]] = []
        ascii_only = text.isascii()   # no UTF-8 bytes: the two views are one
        words = Words.of(text).data if ascii_only else b" " + data.translate(WORDS) + b" "
        if self._literals:
            self._literal_db.scan(words,
                                  match_event_handler=lambda i, _f, to, _fl, _c: raw.append(
                                      (i, to)), scratch=literal_scratch)
        places: list[tuple[int, int]] = []
        self._detector_db.scan(data, match_event_handler=lambda i, _f, to, _fl, _c:
                               places.append((i, to)), scratch=detector_scratch)
        if phrase_scratch is not None:   # " " + view + " ": a phrase ends 2 before `to`
            base = self._phrase_base
            self._phrase_db.scan(words if ascii_only else b" " + data.translate(PHRASE_VIEW)
                                 + b" ",
                                 match_event_handler=lambda i, _f, to, _fl, _c: places.append(
                                     (base + i, to - 2)), scratch=phrase_scratch)
        dense = max(BULK, len(data) // 256)   # more places than this: dense (_Scan.bulk)
        leet = self.leet_places(data, leet_scratch, dense)
        runs = None
        if not raw and not places and not leet:   # most mail: nothing else to read
            runs = self.run_places(data, runs_scratch)
            if not runs and not self.regexes:
                return []
        scan = _Scan(self, text, data, dense, runs_scratch, runs)
        if len(leet) > dense and not scan.bulk(len(leet)):   # dense, yet varied: every place
            leet = self.leet_places(data, leet_scratch, None)
        return scan.run(raw, places, leet)

    def run_places(self, data: bytes, scratch: hyperscan.Scratch) -> set[int]:
        """Where a letter runs three times over: a place inside each run."""
        found: set[int] = set()   # " " first, so a run at the very start has a start too
        self._runs_db.scan(b" " + data, match_event_handler=lambda i, _f, to, _fl, _c:
                           found.add(to - 1), scratch=scratch)
        return found


def _seam(text: str, at: int, earliest: int) -> int:
    """Where to cut near `at`: after the last white space in (earliest, at], so no word is
    split (a split "assessment" would read "ass"); at `at` itself in a text with none."""
    if at >= len(text):
        return len(text)
    cut = max(text.rfind(" ", earliest, at), text.rfind("\n", earliest, at),
              text.rfind("\t", earliest, at))
    return cut + 1 if cut >= 0 else at


class _Scan:
    """One text: the literal hits checked and placed, the detectors' places read closely."""

    def __init__(self, matcher: Matcher, text: str, data: bytes, dense: int,
                 runs_scratch: hyperscan.Scratch, runs: set[int] | None = None) -> None:
        self.m = matcher
        self.text = text
        self.data = data
        self.hits: dict[str, Hit] = {}
        self._leet: bytes | None = None
        self._normalised: str | None = None
        self._continuations: bytes | None = None
        self._counted = (0, 0)   # (a byte offset, continuation bytes before it)
        self.more: list[Hit] = []   # later places of terms marked `every`
        self._again: dict[str, int] = {}   # how many, per term
        self._places: dict[bytes, list[int]] = {}
        self._distinct: set[bytes] | None = None
        self.dense = dense
        self._runs = runs
        self._runs_scratch = runs_scratch

    @functools.cached_property
    def lowered(self) -> bytes:
        """The text with ASCII letters lower-cased: where hits are placed (made on first use:
        most scans place nothing)."""
        return self.data.translate(_LOWER)

    @functools.cached_property
    def tokens(self) -> bytes:
        """Words with odd spellings as runs of non-spaces (see TOKENS), made on first use."""
        return self.data.translate(TOKENS)

    def runs(self) -> set[int]:
        """Where a letter runs three times over (one pass, made once)."""
        if self._runs is None:
            self._runs = self.m.run_places(self.data, self._runs_scratch)
        return self._runs

    def bulk(self, places: int) -> bool:
        """Dense places and fewer distinct words than places (a line-numbered listing, a
        table of codes): the odd words are read from the distinct words, at C speed."""
        return places > self.dense and len(self._distinct_words()) < places

    def run(self, raw: list[tuple[int, int]], places: list[tuple[int, int]], leet: list[int]
            ) -> list[Hit]:
        for i, to in raw:                       # offsets in " " + text: one more than data
            kind, word = self.m._literals[i]
            if kind == "near":
                self._near(word, to)
                continue
            if kind == "word" and self.m.words[word][0].id in self.hits and not any(
                    t.every for t in self.m.words[word]):
                continue
            start = to - len(word) - (2 if kind == "word" else 1)
            end = start + len(word)
            if kind == "stem":                   # the whole word the stem begins
                end = self._word_end(start)
            if not self._alone(start, end):
                continue                         # part of a word with non-ASCII letters
            whole = self.lowered[start:end]
            if whole in self.m.allow:
                continue
            for term in (self.m.words if kind == "word" else self.m.stems)[word]:
                self._add(term, start, end, "plain")
        found: dict[str, dict[bytes, bytes]] = {}    # how → {word: the token it came from}
        by_kind: dict[str, set[int]] = {}
        for i, to in places:
            kind, payload = self.m._detectors[i]
            if kind == "phrase":
                assert payload is not None
                self._phrase_at(payload[1], payload[0], to)
            else:
                by_kind.setdefault(kind, set()).add(to)
        if leet:
            by_kind["leet"] = set(leet)
        if self.bulk(len(places) + len(leet)):   # every kind from the distinct words
            for how, read in (("unicode", self._unicode), ("leet", self._leet_words),
                              ("stretched", self._stretched)):
                if words := self._distinct_of(how):
                    found[how] = read(words)
            if "spaced" in by_kind:
                found["spaced"] = self._spaced(by_kind["spaced"])
            if words := self._distinct_of("masked"):
                found["masked"] = self._masked(words)
        else:
            if "masked" in by_kind:
                found["masked"] = self._masked(self._tokens_at(by_kind["masked"]))
            if "unicode" in by_kind:
                found["unicode"] = self._unicode(self._tokens_at(by_kind["unicode"]))
            if "leet" in by_kind:
                found["leet"] = self._leet_words(self._tokens_at(by_kind["leet"]))
            if "spaced" in by_kind:
                found["spaced"] = self._spaced(by_kind["spaced"])
            if runs := self.runs():
                found["stretched"] = self._stretched(
                    self._distinct_of("stretched") if self.bulk(len(runs))
                    else self._tokens_at(runs))
        for how, variants in found.items():
            self._variants(how, variants)
        for pattern, term in self.m.regexes:
            if (m := pattern.search(self.normalised)) and term.id not in self.hits:
                self.hits[term.id] = Hit(term, m.start(), m.end(), "regex")
        return list(self.hits.values()) + self.more

    def _near(self, form: bytes, to: int) -> None:
        """A near form ("fcuk", "f uck", "youidiot") ending at `to` in " " + text."""
        listed, how, whole = self.m.near[form]
        start = to - len(form) - (2 if whole else 1)
        end = start + len(form) if whole else self._word_end(start + len(form))
        if not self._alone(start, end) or self.lowered[start:end] in self.m.allow:
            return
        for term in (self.m.words if whole else self.m.stems)[listed]:
            if term.severity != "low":
                self._add(term, start, end, how)

    # -- the words the detectors point at ------------------------------------------------

    def _word_end(self, start: int) -> int:
        end = start
        while end < len(self.lowered) and self.lowered[end] in WORD_BYTES:
            end += 1
        return end

    def _tokens_at(self, ends: set[int]) -> dict[bytes, int]:
        """The word (letters, digits, $@|! and non-ASCII bytes) around each place → where."""
        out: dict[bytes, int] = {}
        end = -1
        for to in sorted(ends):
            if to - 1 <= end:
                continue   # within the word just read: dense text has many places per word
            start = self.tokens.rfind(b" ", 0, to - 1) + 1
            end = self.tokens.find(b" ", to - 1)
            end = len(self.tokens) if end < 0 else end
            out.setdefault(self.tokens[start:end], start)
        return out

    def _distinct_of(self, kind: str) -> dict[bytes, int]:
        """The text's distinct words of one kind (their places are not needed: a hit is placed
        by finding its word again)."""
        keep = TOKEN_KINDS[kind]
        return {token: 0 for token in self._distinct_words() if keep(token)}

    def _distinct_words(self) -> set[bytes]:
        """The text's distinct tokens (as `tokens` splits them). Dense text repeats itself:
        its distinct white-space-separated pieces are found first, and only those are put in
        the token form (every token lies inside one piece: white space is a separator in
        both), which halves the cost on a line-numbered listing."""
        if self._distinct is None:
            pieces = set(self.data.split())
            self._distinct = set(b" ".join(pieces).translate(TOKENS).split())
        return self._distinct

    def _unicode(self, tokens: dict[bytes, int]) -> dict[bytes, bytes]:
        """Words with non-ASCII letters, through the full normalisation: NFKC, case folding,
        zero-width characters and look-alike letters ("ѕhit" with a Cyrillic dze). All are
        normalised in one call, a line each (no normalisation makes or eats lines)."""
        out: dict[bytes, bytes] = {}
        written = [t.decode("utf-8", "replace") for t in tokens]
        forms = normalise("\n".join(written)).split("\n")
        for token, as_written, form in zip(tokens, written, forms, strict=True):
            for word in WORD.findall(form):
                how_word = word.encode()
                if word in as_written.lower():   # "café" as written: a plain word
                    self._plain_word(how_word, token)
                else:
                    out.setdefault(how_word, token)
        return out

    def _plain_word(self, word: bytes, token: bytes) -> None:
        if word in self.m.allow:
            return
        for term in self.m.words.get(word, ()):
            self._place(term, token, "plain")

    def _leet_words(self, tokens: dict[bytes, int]) -> dict[bytes, bytes]:
        """Words with digits or $@|! read as letters ("sh1t", "$h!t"); numbers stay numbers."""
        out: dict[bytes, bytes] = {}
        for token in tokens:
            if not token.translate(None, DIGITS_AND_SYMBOLS):
                continue
            for variant in {token.translate(LEET_BYTES),
                            token.replace(b"1", b"l").translate(LEET_BYTES)}:
                for word in variant.translate(WORDS).split():
                    out.setdefault(word, token)
            # A digit or symbol hides a letter, not always the one it looks like: "f0ck" is
            # "fuck". Where it stands, any vowel is tried, in words of four letters or more.
            lowered = token.translate(_LOWER)
            if len(lowered) >= MASKED_MIN and lowered[:1].isalpha():
                read = lowered.translate(LEET_BYTES)
                for i, b in enumerate(lowered):
                    if b in DIGITS_AND_SYMBOLS and read[i:i + 1] in b"aeiou":
                        for vowel in b"aeiou":
                            out.setdefault(read[:i] + bytes([vowel]) + read[i + 1:], token)
        return out

    def _spaced(self, ends: set[int]) -> dict[bytes, bytes]:
        """Letters spaced out with one repeated separator: f.u.c.k, f u c k, f-u-c-k."""
        out: dict[bytes, bytes] = {}
        done = -1
        for to in sorted(ends):
            if to <= done:
                continue
            m = SPACED.match(self.data, to - 5)
            if m:
                letters = m.group(0)[::2].translate(_LOWER)
                for i in range(len(letters) - 2):
                    for j in range(i + 3, len(letters) + 1):
                        out.setdefault(letters[i:j], m.group(0))
                done = m.end()
        return out

    def _masked(self, tokens: dict[bytes, int]) -> dict[bytes, bytes]:
        """Words with letters behind * or # → the listed word (or stem's word) each can be, a
        mask for each hidden letter; two letters at least must show ("s***" is anything).
        Where several fit ("b*****d"), a stem's word wins, then the entry listed first."""
        out: dict[bytes, bytes] = {}
        for token in tokens:
            for part in token.translate(_LOWER).strip(b"*#").split():
                word = part.lstrip(b"*#")
                shown = len(word) - word.count(b"*") - word.count(b"#")
                if shown < 2 or len(word) < MASKED_MIN or not word[:1].isalpha():
                    continue
                hidden = re.compile(re.escape(word).replace(rb"\*", b"[a-z]").replace(
                    rb"\#", b"[a-z]"))
                fits: list[tuple[int, int, bytes]] = []
                for stem in self.m.maskable_stems.get(word[0], ()):
                    rest = word[len(stem):]
                    if len(stem) <= len(word) and not rest.strip(LETTERS) \
                            and hidden.fullmatch(stem + rest):
                        fits.append((0, _line(self.m.stems[stem][0]), stem + rest))
                for listed in self.m.maskable.get((word[0], len(word)), ()):
                    if hidden.fullmatch(listed):
                        fits.append((1, _line(self.m.words[listed][0]), listed))
                if fits:
                    out.setdefault(min(fits)[2], token)
        return out

    @staticmethod
    def _stretched(tokens: dict[bytes, int]) -> dict[bytes, bytes]:
        """Words with a letter three or more times over ("fuuuuck") → with it once and twice."""
        out: dict[bytes, bytes] = {}
        for token in tokens:
            word = token.translate(_LOWER)
            for repl in (_once, _twice):
                out.setdefault(STRETCHED.sub(repl, word), token)
        return out

    def _variants(self, how: str, variants: dict[bytes, bytes]) -> None:
        """Read forms of odd words → the lists: words, stems and phrases that use them."""
        for word in (variants.keys() & self.m.words.keys()) - self.m.allow:
            for term in self.m.words[word]:
                self._place(term, variants[word], how)
        if self.m.stem_pattern is not None:
            for m in self.m.stem_pattern.finditer(b" " + b" ".join(variants)):
                word = m.group(1) + m.group(2)
                if word not in self.m.allow:
                    for term in self.m.stems[m.group(1)]:
                        self._place(term, variants[word], how)
        if how in ("leet", "unicode"):
            for word in variants.keys() & self.m.phrase_words.keys():
                for words, term in self.m.phrase_words[word]:
                    self._phrase_anywhere(term, words, how, variants[word])

    # -- placing hits --------------------------------------------------------------------

    def _alone(self, start: int, end: int) -> bool:
        """Not inside a longer word: no letter or digit either side (non-ASCII ones included,
        but not punctuation such as ’). Offsets hold for every same-length view of data."""
        before = self.text_char(start, -1) if start else ""
        after = self.text_char(end, 1) if end < len(self.data) else ""
        return not before.isalnum() and not after.isalnum()

    def text_char(self, at: int, direction: int) -> str:
        """The character just before (-1) or after (+1) byte offset `at`."""
        if direction < 0:
            chunk = self.data[max(0, at - 4):at]
            return chunk.decode("utf-8", "ignore")[-1:] or "?"
        return self.data[at:at + 4].decode("utf-8", "ignore")[:1] or "?"

    def _offset(self, at: int, start: int = 0) -> int:
        """Characters in data[start:at]: its bytes less the UTF-8 continuation bytes (data is
        valid UTF-8: it was encoded here), counted in C without copying."""
        if self._continuations is None:
            self._continuations = self.data.translate(CONTINUATION)
        if start:
            return at - start - self._continuations.count(1, start, at)
        # From the text's start: counted on from the last place asked (hits come mostly in
        # order), not from 0 each time, which made many hits in long text quadratic.
        last, before = self._counted
        if at < last:
            last, before = 0, 0
        before += self._continuations.count(1, last, at)
        self._counted = (at, before)
        return at - before

    def _add(self, term: Term, start: int, end: int, how: str) -> None:
        if term.id not in self.hits:
            at = self._offset(start)
            self.hits[term.id] = Hit(term, at, at + self._offset(end, start), how)
        elif term.every and self._again.get(term.id, 0) < EVERY:
            self._again[term.id] = self._again.get(term.id, 0) + 1
            at = self._offset(start)
            self.more.append(Hit(term, at, at + self._offset(end, start), how))

    def _place(self, term: Term, written: bytes, how: str) -> None:
        """A hit found through a reading of `written`: at its first standing-alone place."""
        if term.id in self.hits:
            return
        written = written.translate(_LOWER)
        at = first = self.lowered.find(written)
        while at >= 0 and not self._alone(at, at + len(written)):
            at = self.lowered.find(written, at + 1)
        at = at if at >= 0 else first
        if at < 0:
            self.hits[term.id] = Hit(term, 0, 0, how)
        else:
            self._add(term, at, at + len(written), how)

    def _phrase_at(self, term: Term, words: tuple[bytes, ...], to: int) -> None:
        """A phrase the detectors found ending at `to`: find where it starts."""
        pattern = _phrase_pattern(words)
        for m in pattern.finditer(self.lowered, max(0, to - 400), to):
            if m.end() == to:
                self._add(term, m.start(), m.end(), "plain")
                return

    def _phrase_anywhere(self, term: Term, words: tuple[bytes, ...], how: str,
                         token: bytes) -> None:
        """A phrase with an odd word in it: in the leetspeak reading of the text ("k1ll you"),
        or, for look-alike letters, in the normalised text around that word ("piece of ѕhit";
        offsets there are near enough for an excerpt)."""
        if term.id in self.hits:
            return
        pattern = re.compile(r"(?<![^\W_])" + r"[\W_]+".join(
            re.escape(w.decode("utf-8", "replace")) for w in words) + r"(?![^\W_])")
        reach = 80 * len(words)
        for at in self._positions(token.translate(_LOWER)):  # only around the odd word
            low, high = max(0, at - reach), at + len(token) + reach
            if how == "leet":
                if self._leet is None:
                    self._leet = self.lowered.translate(LEET_BYTES)
                for m in _phrase_pattern(words).finditer(self._leet, low, high):
                    if self._alone(m.start(), m.end()):
                        self._add(term, m.start(), m.end(), how)
                        return
            elif m := pattern.search(normalise(
                    self.data[low:high].decode("utf-8", "ignore"))):
                base = self._offset(low)
                self.hits[term.id] = Hit(term, base + m.start(), base + m.end(), how)
                return

    def _positions(self, token: bytes) -> list[int]:
        """Every place a (lower-cased) token stands, found once per scan."""
        if token not in self._places:
            found, at = [], self.lowered.find(token)
            while at >= 0:
                found.append(at)
                at = self.lowered.find(token, at + 1)
            self._places[token] = found
        return self._places[token]

    @property
    def normalised(self) -> str:
        """For `re:` entries: the whole text normalised (offsets are those of the normalised
        text, near enough for an excerpt)."""
        if self._normalised is None:
            self._normalised = normalise(self.text)
        return self._normalised


def _line(term: Term) -> int:
    """Where a term is listed ("profanity:74" → 74): earlier entries are the main forms."""
    tail = term.id.rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def _phrase_pattern(words: tuple[bytes, ...]) -> re.Pattern[bytes]:
    return re.compile(rb"[^a-z0-9\x80-\xff]+".join(map(re.escape, words)))

