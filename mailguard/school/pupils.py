"""Which pupils a text names, and whose children they are: from the directory's `pupils`
column (each parent's children) and its pupil rows, so that a report on one child addressed
to another child's parent can be caught (clause 24, vale section 5.1).

A pupil is known by their UPN when the directory gives one, else by their name, so two
pupils called Jack Smith without UPNs are one "Jack Smith": a parent of either is a parent of
"a Jack Smith", and mail naming Jack Smith to them is never called wrong. Names are found as
whole words in the text's phrase view (mailguard.text.matcher.Words: ASCII lower-cased,
punctuation as spaces), as "Forename Surname" or "Surname, Forename", by one Hyperscan
literal scan however long the directory is.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import hyperscan

from mailguard.school.nicknames import NICKNAMES
from mailguard.text.identifiers import _UPN, upn_valid
from mailguard.text.matcher import PHRASE_VIEW, Words

_UPN_IN_CELL = re.compile(r"\b[A-HJ-NP-RT-Z]\d{11}[0-9A-HJ-NP-RT-Z]\b")
# A document naming more pupils than this is a list (a newsletter, a class register), not a
# message about one child: the confidential check judges lists, this one judges letters.
ABOUT_AT_MOST = 3


@dataclass(frozen=True)
class Pupil:
    key: str        # the UPN, or "name:" and the folded name when there is none
    name: str       # as the directory spells it
    forenames: tuple[bytes, ...]   # folded, lower-cased and as written: "Amelia did well"


def fold(text: str, *, lower: bool = True) -> bytes:
    """A name or text in the phrase view the language checks already make of mail text.
    That view lower-cases ASCII letters only, so a name is also looked for as written:
    "Łukasz" in a letter is not "łukasz"."""
    if lower:
        text = text.lower()
    return b" ".join(text.encode("utf-8", "ignore").translate(PHRASE_VIEW).split())


def _plain(text: str) -> str:
    """Zoë → Zoe: a name typed without its accent is the same name."""
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c))


def _entries(cell: str) -> list[str]:
    """A `pupils` cell's children: "Amelia Jones; Oliver Jones", "Jones, Amelia",
    "Amelia Jones (K801200001001)". Commas separate children only when every part is a
    whole name, since "Jones, Amelia" is one child written surname first."""
    if ";" in cell or "|" in cell:
        parts = re.split(r"[;|]", cell)
    else:
        parts = cell.split(",")
        if len(parts) == 2 and len(_words(parts[0])) == 1:
            parts = [cell]
    return [p.strip() for p in parts if p.strip()]


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_][\w'’-]*", text)


def _name_of(entry: str) -> str:
    """The entry's name, forename first, without its UPN or brackets."""
    entry = _UPN_IN_CELL.sub(" ", entry)
    entry = re.sub(r"[()\[\]<>]", " ", entry).strip(" ,")
    surname, comma, forenames = entry.partition(",")
    if comma and forenames.strip():
        entry = f"{forenames.strip()} {surname.strip()}"
    return " ".join(entry.split())


@dataclass(frozen=True)
class Mention:
    """A name or UPN found in a text, and the pupils it may mean."""

    pupils: frozenset[str]
    name: str


class Families:
    """The directory's pupils and parents, and a scanner for their names."""

    def __init__(self, pupils: dict[str, Pupil], children: dict[str, frozenset[str]],
                 forms: dict[bytes, frozenset[str]], others: frozenset[bytes]) -> None:
        self.pupils = pupils
        self.children = children              # parent address → the pupils they are linked to
        self.parents: dict[str, set[str]] = defaultdict(set)
        for parent, keys in children.items():
            for key in keys:
                self.parents[key].add(parent)
        self._forms = list(forms.items())     # pattern id → (folded form, pupils)
        self._others = others                 # names a member of staff also has
        self._by_upn = frozenset(k for k in pupils if not k.startswith("name:"))
        self._db: hyperscan.Database | None = None
        if self._forms:
            self._db = hyperscan.Database()
            patterns = [b" " + form + b" " for form, _ in self._forms]
            self._db.compile(expressions=patterns, ids=list(range(len(patterns))),
                             elements=len(patterns), literal=True,
                             flags=[0] * len(patterns))   # every place: see forename_in
            self._scratch = hyperscan.Scratch(self._db)

    def __bool__(self) -> bool:
        return bool(self.children)

    @classmethod
    def of(cls, contacts: Iterable) -> Families:
        """From the directory's contacts (mailguard.school.directory.Contact)."""
        pupils: dict[str, Pupil] = {}
        children: dict[str, set[str]] = defaultdict(set)
        names: dict[str, set[str]] = defaultdict(set)    # full name → keys
        called: dict[str, set[str]] = defaultdict(set)   # by a nickname → keys
        adults: set[bytes] = set()
        for contact in contacts:
            if contact.role == "pupil":
                entries = [contact.name + " " + contact.pupils] if contact.name else []
            else:
                entries = _entries(contact.pupils)
                if contact.name and contact.role == "staff":   # who signs the letters
                    adults.add(fold(_name_of(contact.name)))
            for entry in entries:
                name = _name_of(entry)
                if len(_words(name)) < 2:
                    continue   # a forename alone names nobody for certain
                upns = [u for u in _UPN_IN_CELL.findall(entry) if upn_valid(u)]
                key = upns[0] if upns else "name:" + fold(name).decode()
                first, *rest = _words(name)
                short = NICKNAMES.get(first.lower(), ())
                pupils.setdefault(key, Pupil(key, name, tuple({
                    fold(first), fold(first, lower=False), fold(_plain(first)),
                    *(fold(n) for n in short)})))
                names[name].add(key)
                for nickname in short:   # "Ollie Jones" is Oliver Jones
                    called[" ".join((nickname.title(), *rest))].add(key)
                if contact.role != "pupil":
                    children[contact.email].add(key)
        forms: dict[bytes, set[str]] = defaultdict(set)
        for name, keys in names.items():
            for form in _forms(name):
                forms[form] |= keys
        # A name a pupil is registered by wins over another pupil's nickname: "Harry Smith"
        # is Harry Smith, not Henry Smith, when the school has both.
        for name, keys in called.items():
            for form in _forms(name) - forms.keys():
                forms[form] |= keys
        # "Jack Smith" the pupil with no UPN and "Jack Smith" by UPN are the same name.
        return cls(pupils, {p: frozenset(k) for p, k in children.items()},
                   {f: frozenset(k) for f, k in forms.items()}, frozenset(adults))

    def read(self, text: str, *, besides: Callable[[], Iterable[str]] = tuple) -> Reading:
        """The pupils the text names, each name once, by full name or UPN. Names that a
        member of staff in the directory also has, or that are in `besides` (the sender's
        and the recipients' own names), count only by UPN: a teacher called Jack Smith signs
        every letter with a pupil's name, and "Dear Erin Jackson" greets a parent."""
        data = Words.of(text).data if text else b"  "
        found: dict[frozenset[str], str] = {}
        spans: list[tuple[int, int]] = []
        if self._db is not None and text:
            hits: list[tuple[int, int]] = []
            self._db.scan(data, match_event_handler=_collect, context=hits,
                          scratch=self._scratch)
            skip = self._others | {fold(b) for b in besides() if b} if hits else self._others
            for i, end in hits:
                form, keys = self._forms[i]
                spans.append((end - len(form) - 2, end))   # the name, with its spaces
                if form not in skip:
                    found.setdefault(keys, self.pupils[next(iter(keys))].name)
        if self._by_upn and text:
            for m in _UPN.finditer(text):
                upn = m.group(0)
                if upn in self._by_upn and upn_valid(upn):
                    found.setdefault(frozenset((upn,)), self.pupils[upn].name)
        # A pupil found both by name and by UPN is one mention, the surer one.
        merged: dict[frozenset[str], str] = {}
        for keys, name in sorted(found.items(), key=lambda kv: len(kv[0])):
            if not any(k <= keys for k in merged):
                merged[keys] = name
        return Reading(tuple(Mention(keys, name) for keys, name in merged.items()), data,
                       tuple(spans))

    def forename_in(self, reading: Reading, keys: Iterable[str]) -> bool:
        """Whether the text calls one of these pupils by forename ("Amelia has settled"),
        outside the full names it holds: "Elijah Mason" does not call Mason Hughes."""
        data = reading.data
        for form in {f for k in keys for f in self.pupils[k].forenames}:
            needle = b" " + form + b" "
            at = data.find(needle)
            while at != -1:
                if not any(start <= at and at + len(needle) <= end
                           for start, end in reading.names):
                    return True
                at = data.find(needle, at + 1)
        return False


@dataclass(frozen=True)
class Reading:
    """What one text (a message, an attachment) says of pupils."""

    mentions: tuple[Mention, ...]
    data: bytes   # the text's phrase view
    names: tuple[tuple[int, int], ...] = ()   # where in `data` full names were found

    @property
    def about(self) -> bool:
        """Whether the text is about a few pupils (a letter, a report), not a list of many."""
        return 0 < len(self.mentions) <= ABOUT_AT_MOST


def _collect(pattern: int, start: int, end: int, flags: int,
             hits: list[tuple[int, int]]) -> None:
    hits.append((pattern, end))


def _forms(name: str) -> set[bytes]:
    """How a text may write the name: "Amelia Rose Jones", "Amelia Jones", "Jones, Amelia"
    and "JONES Amelia" (one or two spaces between, as wrapping and commas leave in the
    phrase view), with and without accents."""
    out: set[bytes] = set()
    for spelling in {name, _plain(name)}:
        for lower in (True, False):
            words = [fold(w, lower=lower) for w in _words(spelling)]
            words = [w for w in words if w]
            if len(words) < 2:
                continue
            first, last = words[0], words[-1]
            for order in (words, [first, last], [last, first]):
                for gap in (b" ", b"  "):
                    out.add(gap.join(order))
    return out
