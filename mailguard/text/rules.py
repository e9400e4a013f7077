"""Language rules: abuse that no single listed word makes. Slot lists (wordlists/rules/*.txt,
in the wordlist format, so every obfuscation the matcher reads counts here too) are joined
by rules (wordlists/rules/rules.conf) that ask for them in order within one sentence:

    derogation: identity > attribute ; category=discriminatory ; severity=high ; heading=…

A sentence that reports or challenges hate (counter.txt) fires no rule, nor do words in
quotation marks. A pronoun ("they are filthy") stands for a group named the sentence before.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mailguard.text import lexicon
from mailguard.text.lexicon import SENTENCE_END, Hit, Term

RULES_FILE = "rules.conf"
GAP = 1000   # windows closer than this are read as one (fewer, longer scans)
ANCHORS = {"identity", "intent"}   # read first; a rule without one is anchored on its last slot
_RULE = re.compile(r"^([\w-]+)\s*:\s*([\w|>\s]+?)\s*((?:;\s*\w+\s*=\s*[\w-]+\s*)*)$")
# Quoted words: "…", “…”, ‘…’, or '…' opened after a space (not the ' of "can't").
QUOTED = re.compile(r"\"[^\"\n]{1,300}\"|“[^”\n]{1,300}”|‘[^’\n]{1,300}’|(?:^|(?<=\s))'[^'\n]{1,300}'")


class RulesError(ValueError):
    """A rules line that cannot be used, worded `file: line N: problem`."""


@dataclass(frozen=True)
class Rule:
    name: str
    slots: tuple[tuple[str, ...], ...]   # in order; each a choice of slot lists
    next_to: tuple[bool, ...]            # per slot after the first: right after (`>>`)?
    category: str
    severity: str
    heading: str
    line: int


@dataclass(frozen=True)
class RuleHit:
    rule: Rule
    start: int      # offsets in readable(text), as lexicon hits
    end: int
    words: tuple[str, ...]   # the slot entries that made it, for `wordlists test`


@dataclass
class Rules:
    rules: list[Rule]
    slots: lexicon.Lexicon
    anchors: lexicon.Lexicon = field(default_factory=lexicon.Lexicon)

    def __post_init__(self) -> None:
        # Every rule needs a group or a statement of intent, and most mail has neither: the
        # text is read for those alone, and only the sentences around them for the rest.
        anchored = set(ANCHORS)
        for rule in self.rules:
            if not any(set(choice) & ANCHORS for choice in rule.slots):
                anchored.update(rule.slots[-1])
        self.anchors = lexicon.Lexicon(self.slots.allow, [
            t for t in self.slots.terms if t.category in anchored])

    def folded(self) -> list[Term]:
        """The anchor terms as another lexicon can fold them in (lexicon.load(folded=…)), so
        one pass over the text finds list words and anchors alike: every place of a word
        (the literal database reports them all anyway), the first of a phrase ("I will" is
        in most letters, and reading each place again costs more than the pass)."""
        return [dataclasses.replace(t, category=lexicon.ANCHOR + t.category,
                                    id=lexicon.ANCHOR + t.id, companions=(), unless=(),
                                    near=False, every=t.kind != "phrase")
                for t in self.anchors.terms]

    def scan(self, text: str, anchors: list[Hit] | None = None) -> list[RuleHit]:
        """Every rule the text meets; `anchors`, if given, are the anchors' places found by
        a lexicon they were folded into (else they are looked for here)."""
        if not self.rules:
            return []
        if anchors is None:
            anchors = self.anchors.scan(text)
        if not anchors:
            return []
        written = lexicon.readable(text)   # the text the slot hits' offsets count in
        out: dict[str, RuleHit] = {}
        windows: list[tuple[int, int]] = []
        for anchor in sorted(anchors, key=lambda h: h.start):   # every place of each
            if windows and anchor.end <= windows[-1][1]:
                continue   # inside the window just made
            before, stop = _around(written, anchor.start, anchor.end)
            if windows and before <= windows[-1][1] + GAP:   # near: read them as one
                windows[-1] = (windows[-1][0], max(stop, windows[-1][1]))
            else:
                windows.append((before, stop))
        # The windows are read as one text, a blank line between them (which ends a
        # sentence), in one pass of the slot lists, not one pass each.
        pieces, at = [], 0
        for before, stop in windows:
            pieces.append((at, before))
            at += stop - before + 2
        self._window("\n\n".join(written[b:s] for b, s in windows), pieces, out)
        return list(out.values())

    def _window(self, text: str, pieces: list[tuple[int, int]], out: dict[str, RuleHit]
                ) -> None:
        """The rules over windows of a few sentences joined as `text`; `pieces` holds where
        each starts in it and in the scanned text, to place hits there."""
        firsts = [p[0] for p in pieces]

        def placed(at: int) -> int:
            start, offset = pieces[bisect.bisect_right(firsts, at) - 1]
            return offset + at - start
        quotes: list[tuple[int, int]] | None = None   # read only once a rule would fire

        def in_quotes(h: Hit) -> bool:
            nonlocal quotes
            if quotes is None:
                quotes = [(m.start(), m.end()) for m in QUOTED.finditer(text)]
            i = bisect.bisect_right(quotes, (h.start, len(text) + 1)) - 1
            return i >= 0 and h.end <= quotes[i][1]
        hits = sorted(self.slots.scan(text), key=lambda h: h.start)
        starts = _sentences(text)
        fresh = {bisect.bisect_right(starts, p) - 1 for p in firsts}   # no sentence before
        by: dict[int, list[Hit]] = {}
        for h in hits:
            by.setdefault(bisect.bisect_right(starts, h.start) - 1, []).append(h)
        for i, found in by.items():
            if any(h.term.category == "counter" for h in found):
                continue
            earlier = [] if i in fresh else by.get(i - 1, [])
            named_before = any(h.term.category == "identity" for h in earlier) and not any(
                h.term.category == "counter" for h in earlier)
            here = {h.term.category for h in found} | ({"identity"} if named_before and any(
                h.term.category == "pronoun" for h in found) else set())
            for rule in self.rules:
                if rule.name in out or not all(here.intersection(c) for c in rule.slots):
                    continue   # a list the rule needs is not in this sentence
                made = _in_order(rule, found, named_before, text)
                if made and any(in_quotes(h) for h in made):   # quoted words fire nothing
                    made = _in_order(rule, [h for h in found if not in_quotes(h)],
                                     named_before, text)
                if made:
                    out[rule.name] = RuleHit(rule, placed(made[0].start),
                                             placed(made[-1].end - 1) + 1,
                                             tuple(h.term.text for h in made))


NEUTRAL_FILE = "neutral.txt"


def explain(rules: Rules, sources: Iterable[tuple[str, str, bool]]) -> list[dict[str, str]]:
    """Every rule each (where, text, quoted) source meets, with the slot entries that made
    it, as rows beside lexicon.explain's: what `wordlists test` and the desk's term page show."""
    rows = []
    for where, text, _ in sources:
        written = lexicon.readable(text)
        for r in rules.scan(text):
            rows.append({"where": where, "category": r.rule.category,
                         "severity": r.rule.severity, "term": f"rule:{r.rule.name}",
                         "entry": " + ".join(r.words), "how": "rule",
                         "heading": r.rule.heading, "matched": written[r.start:r.end]})
    return rows


def describe(rule: Rule) -> str:
    """A rule's slots as rules.conf writes them: "identity > attribute"."""
    return " > ".join("|".join(choice) for choice in rule.slots)


def lint(rules: Rules, folder: Path) -> list[str]:
    """Warnings for IT: each rule that fires on a sentence of `neutral.txt` (ordinary mail
    about groups), with the slot entries that made it, so a new predicate is caught before
    it holds real mail."""
    path = folder / NEUTRAL_FILE
    if not path.is_file():
        return []
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        sentence = line.strip()
        if not sentence or sentence.startswith("#"):
            continue
        for hit in rules.scan(sentence):
            out.append(f"{path}: line {number}: rule {hit.rule.name} fires on a neutral "
                       f"sentence ({' + '.join(hit.words)}): {sentence!r}")
    return out


def _around(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence around text[start:end] with the one before it (for "they") and the one
    after ("… Roma. They are thieves."): from the second sentence end before it to the
    second after, 1,200 characters either way at most."""
    ends: list[int] = []
    for reach in (300, 1200):   # most sentences are short: look near first
        ends = [m.end() for m in SENTENCE_END.finditer(text, max(0, start - reach), start)]
        if len(ends) >= 2:
            break
    before = ends[-2] if len(ends) >= 2 else max(0, start - 1200) if start > 1200 else 0
    stop = min(len(text), end + 1200)
    for n, m in enumerate(SENTENCE_END.finditer(text, end, stop)):
        if n == 1:
            return before, m.end()
        stop = min(len(text), m.end() + 600)
    return before, stop


def _sentences(text: str) -> list[int]:
    """Where each sentence starts."""
    return [0] + [m.end() for m in SENTENCE_END.finditer(text)]


NEXT_TO = re.compile(r"\s{1,3}")   # what may stand between `>>` slots: white space


def _in_order(rule: Rule, hits: list[Hit], named_before: bool, text: str) -> list[Hit] | None:
    """The first hits that fill the rule's slots in order (for `>>`, the very next word),
    or None."""
    made: list[Hit] = []
    at = -1
    for i, choice in enumerate(rule.slots):
        wanted = set(choice) | ({"pronoun"} if "identity" in choice and named_before else set())
        adjacent = i > 0 and rule.next_to[i - 1]
        nxt = next((h for h in hits if h.start > at and h.term.category in wanted and (
            not adjacent or NEXT_TO.fullmatch(text, at + 1, h.start))), None)
        if nxt is None:
            return None
        made.append(nxt)
        at = nxt.end - 1
    return made


def _heading(written: str) -> str:
    """`child-sexual-exploitation` as the heading is named; `self-harm` keeps its hyphen."""
    return next(h for h in lexicon.HEADINGS if h.replace("-", " ") == written.replace("-", " "))


def load(folder: Path) -> Rules:
    """The rules file and the slot lists beside it; errors name file and line."""
    path = folder / RULES_FILE
    if not path.is_file():
        return Rules([], lexicon.Lexicon())
    slots = lexicon.load(folder, [p.stem for p in folder.glob("*.txt")
                                  if p.name != NEUTRAL_FILE], near=False, every=True)
    known = {t.category for t in slots.terms}
    rules = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        m = _RULE.match(line)
        if not m:
            raise RulesError(f"{path}: line {number}: write NAME: SLOT > SLOT ; category=… ; "
                             "severity=… ; heading=…")
        options = dict(re.findall(r"(\w+)\s*=\s*([\w-]+)", m.group(3)))
        parts = re.split(r"\s*(>>|>)\s*", m.group(2).strip())
        slots_of = tuple(tuple(s.strip() for s in part.split("|")) for part in parts[::2])
        next_to = tuple(op == ">>" for op in parts[1::2])
        if any(not slot for choice in slots_of for slot in choice):
            raise RulesError(f"{path}: line {number}: a slot is missing between > or |")
        for choice in slots_of:
            for slot in choice:
                if slot not in known:
                    raise RulesError(f"{path}: line {number}: no slot list {slot}.txt in "
                                     f"{folder}")
        if options.get("severity", "medium") not in lexicon.SEVERITIES:
            raise RulesError(f"{path}: line {number}: severity must be low, medium or high")
        if options.get("heading", "none").replace("-", " ") not in {
                h.replace("-", " ") for h in lexicon.HEADINGS}:
            raise RulesError(f"{path}: line {number}: heading must be one of "
                             f"{', '.join(lexicon.HEADINGS)} (write spaces as -)")
        unknown = set(options) - {"category", "severity", "heading"}
        if unknown or "category" not in options:
            raise RulesError(f"{path}: line {number}: give category=…, and only category, "
                             "severity and heading")
        rules.append(Rule(m.group(1), slots_of, next_to, options["category"],
                          options.get("severity", "medium"),
                          _heading(options.get("heading", "none")),
                          number))
    return Rules(rules, slots)
