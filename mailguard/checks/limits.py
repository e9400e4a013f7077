"""Recipient limits: one message to very many people is for the school's bulk senders
(the office, ParentMail-style systems), not an ordinary mailbox.

soke 'general guidance': do not "contribute to system congestion by ... unnecessarily
copying or forwarding e-mails"; bourne section 5b(ii): "only ... to those for whom they are
particularly relevant". A per-sender hourly limit on recipients also contains a
compromised account: past it, mail is deferred (451) and IT is told.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from mailguard.config import Action, Section, Shared
from mailguard.model import Finding, Mail, RateLimited

NAME = "limits"
READS_BODY = False
CLAUSE = "soke 'general guidance'; bourne section 5b(ii)"


@dataclass(frozen=True)
class Settings:
    action: Action
    max_recipients: int
    bulk_senders: frozenset[str]   # exempt: office@, the parent-mail system
    hourly: int = 0                # recipients per sender per hour (0: no limit)


# Recipients each sender has sent to in the last hour, in this process, with their running
# total (so a check costs the same at the 5th message as at the 5,000th). Module level, so a
# reload (SIGHUP) does not reset it; with several workers each counts its own share.
_SENT: dict[str, tuple[deque[tuple[float, int]], list[int]]] = {}
_LOCK = threading.Lock()


def admit(sender: str, count: int, limit: int, now: float) -> int | None:
    """Count `count` more recipients for the sender if the hour's total stays within
    `limit`; otherwise count nothing and return how many they have sent this hour."""
    with _LOCK:
        window, total = _SENT.setdefault(sender, (deque(), [0]))
        while window and window[0][0] <= now - 3600:
            total[0] -= window.popleft()[1]
        if total[0] + count > limit:
            return total[0]
        window.append((now, count))
        total[0] += count
        return None


def settings_from(sec: Section, shared: Shared) -> Settings:
    senders = sec.strings("bulk_senders", [])
    for sender in senders:
        if "@" not in sender:
            raise sec.error("bulk_senders", f"{sender!r} is not an email address")
    return Settings(action=sec.action("action", Action.REJECT if sec.table else Action.OFF),
                    max_recipients=sec.integer("max_recipients", 50, minimum=1),
                    bulk_senders=frozenset(s.lower() for s in senders),
                    hourly=sec.integer("hourly", 0))


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    count = len(mail.envelope.recipients)
    sender = mail.envelope.sender.lower()
    if sender in settings.bulk_senders:
        return []
    if settings.hourly and sender:
        sent = admit(sender, count, settings.hourly, time.time())
        if sent is not None:
            raise RateLimited(sender, sent, settings.hourly)
    if count <= settings.max_recipients:
        return []
    return [Finding(
        check=NAME, rule="recipients", action=settings.action, clause=CLAUSE, severity="low",
        evidence=f"{count} recipients, limit {settings.max_recipients}",
        message=f"the message has {count} recipients; ordinary mailboxes may send to "
                f"{settings.max_recipients} at most",
        advice="send only to those who need it, or ask the office to send it through the "
               "school's bulk mail system")]
