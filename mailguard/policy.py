"""Pure decision: every finding in, one verdict out (reject > quarantine > deliver). No I/O."""

from __future__ import annotations

from collections.abc import Iterable

from mailguard.config import Action
from mailguard.model import Finding, Verdict


def decide(findings: Iterable[Finding]) -> Verdict:
    """Collect every reason, then decide once, so the DPO sees all reasons and not the first."""
    found = tuple(f for f in findings if f.action is not Action.OFF)
    if not found:
        return Verdict(Action.OFF)  # nothing to say: plain delivery
    strongest = max(found, key=lambda f: f.action.rank).action
    deciding = [f for f in found if f.action is strongest]
    reason = "; ".join(dict.fromkeys(f.message for f in deciding))
    return Verdict(strongest, found, reason)


def rejection_lines(verdict: Verdict, ref: str) -> list[str]:
    """Words for the person whose mail bounced: what happened, which clause, what to do."""
    lines = []
    for f in verdict.findings:
        if f.action is Action.REJECT:
            lines.append(f"Not sent: {f.message} (policy: {f.clause}). What to do: {f.advice}.")
    lines.append(f"Reference {ref}; your IT team can look it up in mailguard.")
    return lines
