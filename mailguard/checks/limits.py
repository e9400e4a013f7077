"""Recipient limits: one message to very many people is for the school's bulk senders
(the office, ParentMail-style systems), not an ordinary mailbox.

soke 'general guidance': do not "contribute to system congestion by ... unnecessarily
copying or forwarding e-mails"; bourne section 5b(ii): "only ... to those for whom they are
particularly relevant". (The per-sender hourly rate limit is still to come: issue 6.)
"""

from __future__ import annotations

from dataclasses import dataclass

from mailguard.config import Action, Section, Shared
from mailguard.model import Finding, Mail

NAME = "limits"
READS_BODY = False
CLAUSE = "soke 'general guidance'; bourne section 5b(ii)"


@dataclass(frozen=True)
class Settings:
    action: Action
    max_recipients: int
    bulk_senders: frozenset[str]   # exempt: office@, the parent-mail system


def settings_from(sec: Section, shared: Shared) -> Settings:
    senders = sec.strings("bulk_senders", [])
    for sender in senders:
        if "@" not in sender:
            raise sec.error("bulk_senders", f"{sender!r} is not an email address")
    return Settings(action=sec.action("action", Action.REJECT if sec.table else Action.OFF),
                    max_recipients=sec.integer("max_recipients", 50, minimum=1),
                    bulk_senders=frozenset(s.lower() for s in senders))


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    count = len(mail.envelope.recipients)
    if count <= settings.max_recipients or mail.envelope.sender.lower() in settings.bulk_senders:
        return []
    return [Finding(
        check=NAME, rule="recipients", action=settings.action, clause=CLAUSE, severity="low",
        evidence=f"{count} recipients, limit {settings.max_recipients}",
        message=f"the message has {count} recipients; ordinary mailboxes may send to "
                f"{settings.max_recipients} at most",
        advice="send only to those who need it, or ask the office to send it through the "
               "school's bulk mail system")]
