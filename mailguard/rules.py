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

from mailguard import lexicon
from mailguard.lexicon import SENTENCE_END, Hit, Term

RULES_FILE = "rules.conf"
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
        one pass over the text finds list words and anchors alike."""
        return [dataclasses.replace(t, category=lexicon.ANCHOR + t.category,
                                    id=lexicon.ANCHOR + t.id, companions=(), unless=(),
                                    near=False) for t in self.anchors.terms]

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
        done: set[tuple[int, int]] = set()
        for anchor in anchors:   # its sentence, with the ones either side (for "they")
            begin, stop = lexicon.sentence_span(written, anchor.start, anchor.end)
            before = lexicon.sentence_span(written, max(0, begin - 2), max(0, begin - 1))[0] \
                if begin else begin
            if stop < len(written):   # and the one after ("… Roma. They are thieves.")
                stop = lexicon.sentence_span(written, stop, min(len(written), stop + 1))[1]
            if (before, stop) in done:
                continue
            done.add((before, stop))
            self._window(written[before:stop], before, out)
        return list(out.values())

    def _window(self, text: str, offset: int, out: dict[str, RuleHit]) -> None:
        """The rules over a few sentences (a short text: its slot hits are read again here,
        every term's first place in it)."""
        quoted = [(m.start(), m.end()) for m in QUOTED.finditer(text)]
        hits = sorted((h for h in self.slots.scan(text)
                       if not any(a <= h.start and h.end <= b for a, b in quoted)),
                      key=lambda h: h.start)
        starts = _sentences(text)
        by: dict[int, list[Hit]] = {}
        for h in hits:
            by.setdefault(bisect.bisect_right(starts, h.start) - 1, []).append(h)
        for i, found in by.items():
            if any(h.term.category == "counter" for h in found):
                continue
            earlier = by.get(i - 1, [])
            named_before = any(h.term.category == "identity" for h in earlier) and not any(
                h.term.category == "counter" for h in earlier)
            for rule in self.rules:
                if rule.name in out:
                    continue
                made = _in_order(rule, found, named_before)
                if made:
                    out[rule.name] = RuleHit(rule, offset + made[0].start,
                                             offset + made[-1].end,
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


def _sentences(text: str) -> list[int]:
    """Where each sentence starts."""
    return [0] + [m.end() for m in SENTENCE_END.finditer(text)]


def _in_order(rule: Rule, hits: list[Hit], named_before: bool) -> list[Hit] | None:
    """The first hits that fill the rule's slots in order, or None."""
    made: list[Hit] = []
    at = -1
    for choice in rule.slots:
        wanted = set(choice) | ({"pronoun"} if "identity" in choice and named_before else set())
        nxt = next((h for h in hits if h.start > at and h.term.category in wanted), None)
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
                                  if p.name != NEUTRAL_FILE], near=False)   # as written
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
        slots_of = tuple(tuple(s.strip() for s in part.split("|")) for part in
                         m.group(2).split(">"))
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
        rules.append(Rule(m.group(1), slots_of, options["category"],
                          options.get("severity", "medium"),
                          _heading(options.get("heading", "none")),
                          number))
    return Rules(rules, slots)
