"""Notices mailguard sends people: for now, the sender's notice when the DPO rejects held mail."""

from __future__ import annotations

import time
import uuid
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate

from mailguard.config import Settings
from mailguard.relay import Reply, open_upstream


def rejection_notice(settings: Settings, recipient: str, qid: str, reasons: list[str],
                     note: str) -> bytes:
    org = settings.organisation
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = f"{org.name} mail gateway <{org.postmaster}>"
    msg["To"] = recipient
    msg["Subject"] = f"Your message was not sent (reference {qid})"
    msg["Date"] = formatdate(time.time(), localtime=True)
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{settings.server.hostname}>"
    msg["Auto-Submitted"] = "auto-generated"
    lines = [
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
    ]
    msg.set_content("\n".join(lines))
    return msg.as_bytes()


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
