"""Recipient limits: one message to very many people is for the school's bulk senders
(the office, ParentMail-style systems), not an ordinary mailbox.

soke 'general guidance': do not "contribute to system congestion by ... unnecessarily
copying or forwarding e-mails"; bourne section 5b(ii): "only ... to those for whom they are
particularly relevant". A per-sender hourly limit on recipients also contains a
compromised account: past it, mail is deferred (451) and IT is told.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from mailguard.model import Action, Finding, Mail, unavailable
from mailguard.settings.schema import CheckOptions, Chosen, Texts, Whole
from mailguard.settings.shared import Shared
from mailguard.store.rates import CountUnreadable, Rates, SharedRates

NAME = "limits"
READS_BODY = False
CLAUSE = "soke 'general guidance'; bourne section 5b(ii)"


@dataclass(frozen=True)
class Settings:
    action: Action
    max_recipients: int
    bulk_senders: frozenset[str]   # exempt: office@, the parent-mail system
    hourly: int = 0                # recipients per sender per hour (0: no limit)
    rates: Rates | SharedRates | None = None   # the counts shared by every worker (and node)


# One handle per counts file (or shared store), kept across reloads (SIGHUP builds new
# settings, not a new count).
_RATES: dict[Path | str, Rates | SharedRates] = {}


def rates_for(shared: Shared) -> Rates | SharedRates:
    """The hourly counts every worker shares: in the data folder, or in the shared store,
    where every node counts against the one limit."""
    if shared.storage is not None and shared.storage.shared:
        return _RATES.setdefault(shared.storage.url, SharedRates(shared.storage))
    assert shared.data_dir is not None   # config.load always sets it
    path = shared.data_dir / "rates.db"
    return _RATES.setdefault(path, Rates(path))


class Options(CheckOptions):
    """`[checks.limits]`: recipients per message, and per sender per hour."""

    action: Chosen | None = None
    """Past max_recipients (default: reject when the table is there, else off)."""
    max_recipients: Whole = Field(50, ge=1)
    """Recipients one ordinary message may have."""
    bulk_senders: Texts = ()
    """Addresses exempt from both limits (the office, the parent-mail system)."""
    hourly: Whole = Field(0, ge=0)
    """Recipients per sender per hour (0: no limit); past it, 451 and IT is told."""

    @field_validator("bulk_senders")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for sender in value:
            if "@" not in sender:
                raise ValueError(f"{sender!r} is not an email address")
        return value


def build(o: Options, shared: Shared) -> Settings:
    return Settings(action=o.chosen("action", Action.REJECT), max_recipients=o.max_recipients,
                    bulk_senders=frozenset(s.lower() for s in o.bulk_senders),
                    hourly=o.hourly, rates=rates_for(shared) if o.hourly else None)


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    count = len(mail.envelope.recipients)
    sender = mail.envelope.sender.lower()
    if sender in settings.bulk_senders:
        return []
    if settings.rates and sender:
        try:
            sent = await settings.rates.admit(sender, count, settings.hourly, time.time())
        except CountUnreadable as e:
            return [unavailable(NAME, str(e))]
        if sent is not None:
            return [Finding(
                check=NAME, rule="rate", action=Action.DEFER, clause=CLAUSE, severity="medium",
                evidence=f"{sent} recipients this hour, limit {settings.hourly}",
                message=f"{sender} has sent to {sent} recipients in the last hour; "
                        f"the limit is {settings.hourly}",
                advice="your mail server will try again later")]
    if count <= settings.max_recipients:
        return []
    return [Finding(
        check=NAME, rule="recipients", action=settings.action, clause=CLAUSE, severity="low",
        evidence=f"{count} recipients, limit {settings.max_recipients}",
        message=f"the message has {count} recipients; ordinary mailboxes may send to "
                f"{settings.max_recipients} at most",
        advice="send only to those who need it, or ask the office to send it through the "
               "school's bulk mail system")]
