"""Pure decision: every finding in, one verdict and its plan out (defer > reject > quarantine >
notify > log). No I/O."""

from __future__ import annotations

from collections.abc import Iterable

from mailguard.model import STEPS, Action, Finding, Sign, Step, Verdict

# A plan is carried out only on mail that may yet go out: now, or when a reviewer releases it.
_PLANNED = (Action.OFF, Action.LOG, Action.NOTIFY, Action.QUARANTINE)


def plan_of(findings: Iterable[Finding], sign: Sign | None = None) -> tuple[Step, ...]:
    """Every step the findings ask for, once each, in the policy's order (STEPS), not in the
    order the checks ran; signing comes last, over every change."""
    steps = list(dict.fromkeys(s for f in findings for s in f.steps))
    if sign is not None:
        steps.append(sign)
    return tuple(sorted(steps, key=lambda s: STEPS.index(type(s))))


def decide(findings: Iterable[Finding], sign: Sign | None = None) -> Verdict:
    """Collect every reason, then decide once, so the DPO sees all reasons and not the first."""
    found = tuple(f for f in findings if f.action is not Action.OFF)
    if not found:   # nothing to say: plain delivery
        return Verdict(Action.OFF, plan=plan_of((), sign))
    strongest = max(found, key=lambda f: f.action.rank).action
    deciding = [f for f in found if f.action is strongest]
    reason = "; ".join(dict.fromkeys(f.message for f in deciding))
    plan = plan_of(found, sign) if strongest in _PLANNED else ()
    return Verdict(strongest, found, reason, plan)


def rejection_lines(verdict: Verdict, ref: str) -> list[str]:
    """Words for the person whose mail bounced: what happened, which clause, what to do."""
    lines = []
    for f in verdict.findings:
        if f.action is Action.REJECT:
            lines.append(f"Not sent: {f.message} (policy: {f.clause}). What to do: {f.advice}.")
    lines.append(f"Reference {ref}; your IT team can look it up in mailguard.")
    return lines
