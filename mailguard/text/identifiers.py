"""Signs that text or a table holds personal data: protective markings, pupil and staff
identifiers validated by their check characters (not just their shape), labelled dates of
birth, MIS-export columns, and special-category or safeguarding terms.

UPN: DfE "Unique pupil numbers" guide, annex A. ULN: ESFA ULN validation guide. National
Insurance: HMRC NIM39110. NHS number: modulus 11 (NHS Data Dictionary).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from mailguard.text.phrases import Present

DOB_LABEL = "labelled date of birth"
CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"   # remainder 0..22; I, O and S are never used
_UPN = re.compile(r"\b([A-HJ-NP-RT-Z])(\d{11})([0-9A-HJ-NP-RT-Z])\b")
_TEN = re.compile(r"\b(\d{3})[ -]?(\d{3})[ -]?(\d{4})\b")
_NINO = re.compile(r"\b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])\b")
NINO_UNALLOCATED = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
_DATE = r"(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{1,2}(?:st|nd|rd|th)? [A-Z][a-z]{2,8} \d{4})"
_DOB = re.compile(r"(?i:\b(?:d\.?o\.?b\.?|date of birth|born(?: on)?|birth ?date)\b)[^\n\d]{0,20}" + _DATE)
_CONTEXT = {"uln": re.compile(r"(?i)\b(?:ULN|unique learner)"),
            "nhs": re.compile(r"(?i)\bNHS\b")}
# Protective markings: anywhere in names, properties and subjects; in running text only in
# capitals, as headers and footers carry them (a policy that mentions "confidential" is not).
_MARKING_WORDS = (r"official[- ]sensitive|strictly confidential|private (?:and|&) confidential|"
                  r"confidential|child protection|safeguarding|sensitive personal data|"
                  r"special category data|restricted")
MARKING_ANYCASE = re.compile(rf"(?i)\b(?:{_MARKING_WORDS})\b")
MARKING_CAPITALS = re.compile(r"\b(?:OFFICIAL[- ]SENSITIVE|STRICTLY CONFIDENTIAL|"
                              r"PRIVATE (?:AND|&) CONFIDENTIAL|CONFIDENTIAL|CHILD PROTECTION|"
                              r"SAFEGUARDING|SENSITIVE PERSONAL DATA)\b")
SPECIAL = re.compile(r"(?i)\b(?:SEN(?:D|CO)?|EHCP?|education,? health and care plan|"
                     r"special educational needs|medical|diagnos[ie]s|medication|allerg(?:y|ies)|"
                     r"child protection|safeguarding|looked[- ]after|LAC|CiN|child in need|"
                     r"social worker|disclosure|self[- ]harm|mental health|ethnicity|religion|"
                     r"FSM|free school meals|pupil premium)\b")
# Column names of pupil tables (SIMS, Arbor, Bromcom exports, DfE census files).
PUPIL_COLUMNS = {
    "identity": {"upn", "uln", "legal surname", "legal forename", "surname", "forename",
                 "first name", "last name", "preferred surname", "preferred forename",
                 "full name", "pupil name", "student name", "name", "dob", "date of birth",
                 "birth date", "admission number", "adno"},
    "school": {"year", "year group", "ncyear", "ncyearactual", "reg group", "registration group",
               "form", "tutor group", "class", "house", "enrolstatus", "gender", "sex"},
    "special": {"sen", "sen status", "sen provision", "senprovision", "sen need", "ehcp", "fsm",
                "fsmeligible", "fsm eligible", "pupil premium", "medical", "medical conditions",
                "ethnicity", "religion", "eal", "language", "first language", "cp", "lac",
                "looked after", "child protection", "in care", "disability", "allergies"},
    "contact": {"address", "postcode", "parent", "contact", "contact 1", "home phone",
                "mobile", "email", "parent email", "priority 1 contact"},
}


def upn_valid(upn: str) -> bool:
    """DfE annex A: characters 2 to 13 weighted 2..13, sum mod 23 picks the check letter (a
    temporary UPN's letter in place 13 counts by the same table)."""
    if len(upn) != 13 or upn[0] not in CHECK_LETTERS:
        return False
    total = 0
    for weight, ch in enumerate(upn[1:], 2):
        if ch.isdigit():
            total += weight * int(ch)
        elif weight == 13 and ch in CHECK_LETTERS:
            total += weight * CHECK_LETTERS.index(ch)
        else:
            return False
    return CHECK_LETTERS[total % 23] == upn[0]


def uln_valid(digits: str) -> bool:
    """ESFA: first nine digits weighted 10..2, remainder mod 11 (0 is invalid), 10 - it is the tenth."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    remainder = sum(w * int(d) for w, d in zip(range(10, 1, -1), digits, strict=False)) % 11
    return remainder != 0 and 10 - remainder == int(digits[9])


def nhs_valid(digits: str) -> bool:
    """Modulus 11: weights 10..2, check = 11 - remainder (11 → 0, 10 → invalid)."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    check = 11 - sum(w * int(d) for w, d in zip(range(10, 1, -1), digits, strict=False)) % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def nino_valid(prefix: str) -> bool:
    return prefix not in NINO_UNALLOCATED


@dataclass
class Signals:
    """What was found, as counts (never the values themselves: they go nowhere)."""

    identifiers: Counter[str] = field(default_factory=Counter)
    markings: set[str] = field(default_factory=set)
    special: set[str] = field(default_factory=set)
    tables: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.identifiers or self.markings or self.tables)

    def describe(self) -> str:
        bits = [f"marked {', '.join(sorted(self.markings))}"] if self.markings else []
        bits += [f"{n} valid {kind}{'s' if n > 1 else ''}" for kind, n in sorted(self.identifiers.items())]
        bits += self.tables
        if self.special:
            bits.append(f"special-category terms ({', '.join(sorted(self.special))})")
        return "; ".join(bits)


_PATTERNS = (_UPN, _NINO, _TEN, _DOB, MARKING_CAPITALS, MARKING_ANYCASE, SPECIAL)
# One Hyperscan pass says which patterns occur at all (about 10 us per 10 KB, where the
# seven regexes take 2.5 ms): most mail holds none, and only those found are run.
_ANY = Present(p.pattern.encode() for p in _PATTERNS)


def _present(text: str) -> set[re.Pattern[str]]:
    return {_PATTERNS[i] for i in _ANY.found(text)}


def scan_text(text: str, signals: Signals, *, capitals_only: bool = True) -> None:
    """Identifiers, labelled dates of birth, markings and special terms in running text."""
    present = _present(text)
    if not present:
        return
    if _UPN in present:
        signals.identifiers["UPN"] += sum(upn_valid(m.group()) for m in _UPN.finditer(text))
    if _NINO in present:
        signals.identifiers["National Insurance number"] += sum(
            nino_valid(m.group(1)) for m in _NINO.finditer(text))
    for m in _TEN.finditer(text) if _TEN in present else ():
        digits = "".join(m.groups())
        near = text[max(0, m.start() - 40):m.start()]
        if uln_valid(digits) and _CONTEXT["uln"].search(near):
            signals.identifiers["ULN"] += 1
        elif nhs_valid(digits) and _CONTEXT["nhs"].search(near):
            signals.identifiers["NHS number"] += 1
    if _DOB in present:
        signals.identifiers[DOB_LABEL] += len(_DOB.findall(text))
    signals.identifiers += Counter()   # drop zero counts
    marking = MARKING_CAPITALS if capitals_only else MARKING_ANYCASE
    if marking in present:
        signals.markings.update(m.group().upper() for m in marking.finditer(text))
    if SPECIAL in present:
        signals.special.update(m.group().upper() for m in SPECIAL.finditer(text[:200_000]))


def scan_table(headers: Iterable[str], rows: int, where: str, signals: Signals, *,
               min_rows: int) -> None:
    """A table is an MIS export when it has a pupil's identity and more about them, for many."""
    names = {re.sub(r"[\s_]+", " ", h.strip().lower()) for h in headers}
    found = {kind: names & columns for kind, columns in PUPIL_COLUMNS.items()}
    others = len(found["school"]) + len(found["special"]) + len(found["contact"])
    if rows >= min_rows and found["identity"] and len(found["identity"]) + others >= 3:
        shown = sorted(set().union(*found.values()))[:6]
        signals.tables.append(f"{where}: {rows} rows with columns {', '.join(shown)}")
        signals.special.update(c.upper() for c in found["special"])
