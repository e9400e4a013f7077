"""Staff writing to a pupil outside professional boundaries (KCSIE; bourne appendix B item 3,
"explicit professional boundaries"): the signals the language check finds in grooming.txt
(secrecy, private channels, meeting outside school, appearance, gifts, closeness), and
contact out of hours, weighed together. One signal alone is weak; two different ones, or one
listed high, make one finding that always alerts the safeguarding lead.
"""

from __future__ import annotations

from typing import Any

from mailguard.model import Action, Finding, Mail
from mailguard.school.directory import role_of
from mailguard.school.hours import WorkingHours
from mailguard.text.lexicon import Hit, excerpt, readable

CATEGORY = "grooming"
CLAUSE = ("bourne appendix B item 3 and 'Communication with children' (explicit professional "
          "boundaries); KCSIE")


def finding(mail: Mail, signals: list[tuple[str, Hit, str]], directory: Any,
            hours: WorkingHours, action: Action) -> Finding | None:
    """One `grooming:signals` finding for mail to a pupil with enough signals, else None.
    `signals` are (where, hit, text) from the sender's own words; one phrase inside
    another ("delete this" in "delete this email") counts once."""
    pupils = [r for r in mail.envelope.recipients if role_of(directory, r) == "pupil"]
    if not pupils or action is Action.OFF:
        return None
    seen: dict[str, tuple[str, Hit, str]] = {}
    taken: set[tuple[str, int]] = set()
    for where, hit, text in sorted(signals, key=lambda s: (s[0], s[1].start, -s[1].end)):
        span = {(where, i) for i in range(hit.start, hit.end)}
        if not span & taken:
            seen.setdefault(hit.term.id, (where, hit, text))
            taken |= span
    reasons = [f"{h.term.category}:{h.term.id.rpartition(':')[2]}" for _, h, _ in seen.values()]
    late = not hours.contains(mail.received_at)
    if late:
        reasons.append("out-of-hours")
    strong = any(h.term.severity == "high" for _, h, _ in seen.values())
    if not strong and len(reasons) < 2:
        return None
    first = next(iter(seen.values()), None)
    return Finding(
        check="language", rule=f"{CATEGORY}:signals", action=action, severity="high",
        alert=True, heading="grooming", clause=CLAUSE,
        message=f"a message to a pupil has {len(reasons)} sign{'s' if len(reasons) > 1 else ''}"
                " of contact outside professional boundaries (secrecy, private channels, "
                "meeting outside school, appearance, gifts or late contact)",
        advice="keep contact with pupils to school systems, school hours and school matters; "
               "if this was meant innocently, the safeguarding lead will release it",
        evidence=f"to {len(pupils)} pupil(s); signals {', '.join(reasons)}" + (
            f"; {hours.describe(mail.received_at)}" if late else "") + (
            f": {excerpt(readable(first[2]), first[1])}" if first else ""))

