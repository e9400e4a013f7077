"""Notices mailguard sends people: the sender's notice when the DPO rejects held mail, and the
safeguarding lead's alert when a message trips a category they must hear of."""

from __future__ import annotations

import time
import uuid
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate

from mailguard.config import Settings
from mailguard.model import Finding, Mail
from mailguard.relay import Reply, open_upstream

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
    lines = [
        "Hello,",
        "",
        f"{settings.organisation.name}'s mail gateway found {' and '.join(categories)} "
        "language in a message",
        f"from {mail.envelope.sender or '(no sender)'} to "
        f"{len(mail.envelope.recipients)} recipient(s)"
        f" at {', '.join(mail.envelope.recipient_domains)}.",
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
                   f"Safeguarding alert: {', '.join(categories)} language (reference "
                   f"{reference})", lines)


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
