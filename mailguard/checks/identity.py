"""Sender identity: mail must come from the school's domains and from the person who sent it.

leventhorpe forbids mail that "represent[s] the sender as someone else"; soke forbids sending
under an assumed name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, Field

from mailguard.model import Action, Finding, Mail
from mailguard.settings.schema import CheckOptions, Chosen, Flag, Texts, parse_domain
from mailguard.settings.shared import OrganisationSettings, Shared

NAME = "identity"
READS_BODY = False
CLAUSE = "leventhorpe 'Security/Appropriate Use'; soke 'general guidance'"


@dataclass(frozen=True)
class Settings:
    action: Action
    organisation: OrganisationSettings
    delegations: Mapping[str, frozenset[str]]
    allow_subdomains: bool

    def owns(self, address: str) -> bool:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if domain in self.organisation.domains:
            return True
        return self.allow_subdomains and any(
            domain.endswith("." + d) for d in self.organisation.domains)


def _mailbox(value: object) -> str:
    if not isinstance(value, str) or "@" not in value:
        raise ValueError("must be a mailbox address such as office@school.sch.uk")
    parse_domain(value.rpartition("@")[2])
    return value.lower()


class Options(CheckOptions):
    """`[checks.identity]`: the From header is the sender's own."""

    action: Chosen = Action.REJECT
    """A From the sender may not use."""
    allow_subdomains: Flag = True
    """A From in a subdomain of the trust's (head@pri.example.sch.uk) is the trust's."""
    delegations: dict[Annotated[str, BeforeValidator(_mailbox)], Texts] = Field(
        default_factory=dict)
    """Shared mailboxes and who may send as them: "office@school.sch.uk" = ["a@…", "b@…"]."""


def build(o: Options, shared: Shared) -> Settings:
    return Settings(action=o.action, organisation=shared.organisation,
                    delegations={box: frozenset(u.lower() for u in users)
                                 for box, users in o.delegations.items()},
                    allow_subdomains=o.allow_subdomains)


def _is_users(address: str, user: str) -> bool:
    """An auth user owns an address when it is that address, or its local part for bare names."""
    address, user = address.lower(), user.lower()
    return address == user or ("@" not in user and address.partition("@")[0] == user)


def _finding(settings: Settings, rule: str, message: str, advice: str, evidence: str) -> Finding:
    return Finding(check=NAME, rule=rule, action=settings.action, clause=CLAUSE,
                   message=message, advice=advice, evidence=evidence)


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    froms = [a for _, a in mail.addresses("From")]
    org = settings.organisation
    if not froms:
        return [_finding(settings, "no_from", "the message has no readable From address",
                         "send it from your school mail program, which fills in From",
                         evidence="From missing or unreadable")]
    if len(froms) > 1:
        return [_finding(settings, "several_from", "the From header names more than one sender",
                         "send from one address", evidence=f"{len(froms)} From addresses")]
    sender = froms[0]
    findings = []
    # Bounces (null envelope sender) come from the mail system itself, not from a person.
    if mail.envelope.sender and not settings.owns(sender):
        findings.append(_finding(
            settings, "foreign_from",
            f"the From address is not in {org.name}'s domains ({', '.join(org.domains)})",
            "send school mail from your school account",
            evidence="From domain " + sender.rpartition("@")[2].lower()))
    user = mail.client.auth_user
    if user and not _is_users(sender, user) and user.lower() not in settings.delegations.get(
            sender.lower(), frozenset()):
        findings.append(_finding(
            settings, "not_yours",
            "the From address is not the mailbox you signed in as",
            "send from your own address; to send as a shared mailbox ask IT to add a delegation",
            evidence=f"auth user differs from From (domain {sender.rpartition('@')[2].lower()})"))
    return findings
