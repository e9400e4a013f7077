"""policy.decide: the strongest action wins and every reason is kept."""

from __future__ import annotations

from mailguard import policy
from mailguard.model import Action, Finding


def finding(rule: str, action: Action, message: str = "m") -> Finding:
    return Finding(check="c", rule=rule, action=action, clause="clause §1", message=message,
                   advice="do this")


def test_no_findings_delivers():
    assert policy.decide([]).action is Action.OFF


def test_reject_beats_quarantine_beats_log_and_all_reasons_are_kept():
    v = policy.decide([finding("a", Action.LOG), finding("b", Action.REJECT, "bad"),
                       finding("c", Action.QUARANTINE)])
    assert v.action is Action.REJECT
    assert v.rule_ids == ("c.a", "c.b", "c.c")
    assert v.reason == "bad"


def test_rejection_lines_name_clause_advice_and_reference():
    v = policy.decide([finding("b", Action.REJECT, "it was bad")])
    lines = policy.rejection_lines(v, "REF1")
    assert lines[0] == "Not sent: it was bad (policy: clause §1). What to do: do this."
    assert "REF1" in lines[-1]
