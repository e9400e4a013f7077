"""Notices mailguard sends people: the sender's notice when the DPO rejects held mail, and the
safeguarding lead's alert when a message trips a category they must hear of."""

from __future__ import annotations

import time
import uuid
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate
from typing import Any

from mailguard.config import Settings
from mailguard.delivery.relay import Reply, open_upstream
from mailguard.model import Finding, Mail

WHAT_HAPPENED = {
    "delivered": "It was delivered. A copy is kept for you in the quarantine (status "
                 "'released'), so you can read it.",
    "quarantined": "It is held in the quarantine for review and has not been delivered.",
    "rejected": "It was refused and returned to the sender; no copy was kept.",
}


def _notice(settings: Settings, recipient: str, subject: str, lines: list[str]) -> bytes:
    org = settings.organisation
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = f"{org.name} mail gateway <{org.postmaster}>"
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(time.time(), localtime=True)
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{settings.server.hostname}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content("\n".join(lines))
    return msg.as_bytes()


def safeguarding_alert(settings: Settings, mail: Mail, findings: list[Finding],
                       outcome: str, reference: str) -> bytes:
    """Who sent what kind of thing to how many, and where to read it. Envelope facts and rule
    ids only: the words themselves stay in the quarantine, behind its audit trail."""
    categories = sorted({f.rule.split(":")[0] for f in findings})
    headings = sorted({f.heading for f in findings if f.heading not in ("", "none")})
    about = ", ".join(headings) or ", ".join(categories)
    lines = [
        "Hello,",
        "",
        f"{settings.organisation.name}'s mail gateway found {' and '.join(categories)} "
        "language in a message",
        f"from {mail.envelope.sender or '(no sender)'} to "
        f"{len(mail.envelope.recipients)} recipient(s)"
        f" at {', '.join(mail.envelope.recipient_domains)}.",
        *([f"Safeguarding headings: {', '.join(headings)}."] if headings else []),
        "",
        WHAT_HAPPENED[outcome],
        "",
        "What was found (rule, severity, policy):",
        *[f"  - {f.rule_id}, {f.severity}: {f.message} ({f.clause})" for f in findings],
        "",
        f"Reference: {reference}. To read it: mailguard quarantine show {reference}",
        "(each reading is recorded in the audit trail).",
    ]
    return _notice(settings, settings.organisation.safeguarding_lead,
                   f"Safeguarding alert: {about} (reference {reference})", lines)


def rate_limit_notice(settings: Settings, sender: str, what: str, reference: str) -> bytes:
    """To IT (the postmaster): a sender is past the hourly limit. A burst is how a
    compromised account looks, so say what to check as well as what happened."""
    return _notice(settings, settings.organisation.postmaster,
                   f"Mail from {sender} deferred: hourly limit reached", [
                       f"mailguard is deferring mail from {sender}: {what}.",
                       f"Reference {reference}. The sender's server keeps the mail and retries; "
                       "it goes out once the hour's count falls below the limit.",
                       "If this was not them, the account may be compromised: reset its "
                       "password and check its sent items. If it is genuine bulk mail, add the "
                       "address to [checks.limits] bulk_senders."])


def rejection_notice(settings: Settings, recipient: str, qid: str, reasons: list[str],
                     note: str) -> bytes:
    org = settings.organisation
    return _notice(settings, recipient, f"Your message was not sent (reference {qid})", [
        "Hello,",
        "",
        f"A message you sent was held by {org.name}'s mail gateway for review, and the",
        "reviewer decided not to send it.",
        "",
        "Why it was held:",
        *[f"  - {r}" for r in reasons],
        "",
        "The reviewer's note:",
        f"  {note}" if note else "  (none)",
        "",
        f"Reference: {qid}. If you think this is wrong, reply to IT or the Data Protection",
        "Officer quoting the reference.",
    ])


async def send(settings: Settings, recipient: str, message: bytes) -> Reply:
    """Send a notice with the null sender, so it can never bounce back into a loop."""
    upstream = open_upstream(settings.upstream, settings.server.hostname)
    try:
        txn = await upstream.begin("", [])
        if isinstance(txn, Reply):
            return txn
        reply = await txn.add_recipient(recipient, [])
        if not reply.ok:
            await txn.abort()
            return reply
        return await txn.send(message)
    finally:
        await upstream.close()


def _link(settings: Settings, qid: str) -> str:
    return f"{settings.web.public_url}/message/{qid}" if settings.web.public_url else \
        f"mailguard quarantine show {qid}"


def _held_line(held: Any) -> str:
    rules = ", ".join(sorted({f["rule"] for f in held.findings}))
    return (f"{held.id}: from {held.sender or '(no sender)'} to {len(held.recipients)} "
            f"recipient(s), held for {rules}")


def held_notice(settings: Settings, recipient: str, held: Any) -> bytes:
    """To a reviewer: one message was held. Envelope facts, rule ids and clauses, and the
    link; never the subject or the words, which stay behind the desk's audit trail."""
    return _notice(settings, recipient, f"Mail held for review (reference {held.id})", [
        "Hello,",
        "",
        f"{settings.organisation.name}'s mail gateway has held a message for review:",
        f"  {_held_line(held)}",
        "",
        "Why (rule, policy):",
        *[f"  - {f['rule']}: {f['message']} ({f['clause']})" for f in held.findings],
        "",
        f"Review it: {_link(settings, held.id)}",
        f"Unless someone acts, it expires in {settings.storage.quarantine_retention_days} days.",
    ])


def held_digest(settings: Settings, recipient: str, items: list[Any]) -> bytes:
    """To a reviewer: many messages were held; one notice lists them."""
    shown = items[:100]
    url = settings.web.public_url
    return _notice(settings, recipient, f"{len(items)} messages held for review", [
        "Hello,",
        "",
        f"{settings.organisation.name}'s mail gateway has held {len(items)} messages for "
        "review since its last notice:",
        *[f"  - {_held_line(h)}" for h in shown],
        *([f"  … and {len(items) - len(shown)} more"] if len(items) > len(shown) else []),
        "",
        f"Review them: {url + '/queue' if url else 'mailguard quarantine list'}",
    ])


def sender_held_notice(settings: Settings, held: Any) -> bytes:
    """To the sender: their message is waiting for a reviewer, and why, in plain words."""
    return _notice(settings, held.sender, f"Your message is waiting for review (reference "
                                          f"{held.id})", [
        "Hello,",
        "",
        f"A message you sent to {len(held.recipients)} recipient(s) has been held by "
        f"{settings.organisation.name}'s mail gateway, and has not been delivered yet.",
        "",
        "Why:",
        *[f"  - {f['message']} (policy: {f['clause']}). {f['advice']}." for f in held.findings],
        "",
        "The Data Protection Officer will review it. You will get another email when it is",
        "released or rejected; you do not need to send it again.",
        f"Reference: {held.id}.",
    ])


def release_notice(settings: Settings, held: Any, delivered: list[str]) -> bytes:
    return _notice(settings, held.sender, f"Your message has been sent (reference {held.id})", [
        "Hello,",
        "",
        f"A message you sent was held by {settings.organisation.name}'s mail gateway for review.",
        f"The reviewer released it, and it has now been delivered to {len(delivered)} "
        "recipient(s):",
        *[f"  - {r}" for r in delivered],
        "",
        f"Reference: {held.id}.",
    ])
