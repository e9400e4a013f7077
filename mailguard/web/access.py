"""Who may do what on the review desk, in one place, enforced on the server.

vale section 5.5: monitoring by authorised staff only. The DPO sees and does everything; the
safeguarding lead sees safeguarding messages and what the DPO assigns them; IT sees numbers,
never content; the auditor reads the audit log.
"""

from __future__ import annotations

from typing import Any

from mailguard.store.quarantine import Held

PAGES = {
    "queue": {"dpo", "dsl", "it"},
    "dashboard": {"dpo", "it"},
    "terms": {"dpo", "it"},
    "events": {"dpo", "it"},
    "audit": {"dpo", "auditor"},
    "assign": {"dpo"},
    "export": {"dpo"},
}
HOME = {"dpo": "/queue", "dsl": "/queue", "it": "/dashboard", "auditor": "/audit"}


def may(role: str, page: str) -> bool:
    return role in PAGES.get(page, set())


def sees_subjects(role: str) -> bool:
    return role in ("dpo", "dsl")


def may_open(reviewer: Any, held: Held) -> bool:
    """Whether this reviewer may read the message and act on it."""
    if reviewer.role == "dpo":
        return True
    return reviewer.role == "dsl" and (bool(held.safeguarding) or held.assigned_to == reviewer.name)


def queue_scope(reviewer: Any) -> tuple[str, tuple[Any, ...]]:
    """The SQL condition (on quarantine q) for the messages this reviewer's queue lists."""
    if reviewer.role == "dsl":
        return "(q.safeguarding = 1 OR q.assigned_to = ?)", (reviewer.name,)
    return "1 = 1", ()
