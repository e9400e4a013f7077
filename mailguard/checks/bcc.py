"""Bulk mail that shows parents' (or outsiders') addresses to each other gets them moved to Bcc.

bourne appendix B, "Email and Internet Use": mail to many recipients uses BCC so parents'
addresses are hidden. The ICO reports education as the sector that most often fails to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from mailguard.model import Action, Finding, HideRecipients, Mail, SplitPerRecipient
from mailguard.school.directory import role_of
from mailguard.settings.schema import CheckOptions, Whole
from mailguard.settings.shared import OrganisationSettings, Shared

NAME = "bcc"
READS_BODY = False
CLAUSE = "bourne appendix B 'Email and Internet Use'"
ACTIONS = {"rewrite": Action.LOG, "log": Action.LOG, "quarantine": Action.QUARANTINE,
           "reject": Action.REJECT, "off": Action.OFF}


@dataclass(frozen=True)
class Settings:
    action: Action
    rewrite: bool
    threshold: int
    mode: str  # "bcc": one message, exposed addresses out of To/Cc; "split": a copy each
    to: str    # "sender" or "undisclosed": what To says when nobody visible is left in it
    organisation: OrganisationSettings
    directory: Any


class Options(CheckOptions):
    """`[checks.bcc]`: bulk mail that shows parents' or outsiders' addresses."""

    action: Literal["rewrite", "log", "quarantine", "reject", "off"] = "rewrite"
    """"rewrite": move the exposed addresses to Bcc and deliver; or log, quarantine, reject."""
    threshold: Whole = Field(2, ge=2)
    """Parents (or outside mailboxes) shown in To/Cc that make it bulk mail."""
    mode: Literal["bcc", "split"] = "bcc"
    """"bcc": one message, exposed addresses out of To/Cc; "split": a copy each."""
    to: Literal["sender", "undisclosed"] = "sender"
    """What To says when nobody visible is left in it."""


def build(o: Options, shared: Shared) -> Settings:
    return Settings(action=ACTIONS[o.action], rewrite=o.action == "rewrite",
                    threshold=o.threshold, mode=o.mode, to=o.to,
                    organisation=shared.organisation, directory=shared.directory)


def exposed(mail: Mail, settings: Settings) -> tuple[frozenset[str], int, int]:
    """(addresses to hide, parents shown, distinct external mailboxes shown) in To and Cc."""
    shown = {a.lower() for field in ("To", "Cc") for _, a in mail.addresses(field)}
    hidden, parents, external = set(), 0, 0
    for address in shown:
        role = role_of(settings.directory, address)
        ours = settings.organisation.owns(address)
        parents += role == "parent"
        external += not ours
        if role != "staff" and not (ours and role is None):
            hidden.add(address)  # parents, pupils, suppliers, anyone outside: never on show
    return frozenset(hidden), parents, external


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    hidden, parents, external = exposed(mail, settings)
    n = settings.threshold
    if parents < n and external < n:
        return []
    what = (f"{parents} parents' addresses" if parents >= n
            else f"{external} outside addresses")
    froms = [a for _, a in mail.addresses("From")]
    to = froms[0] if settings.to == "sender" and froms else "undisclosed-recipients:;"
    note = f"{len(hidden)} recipients moved from To/Cc to Bcc by mailguard ({CLAUSE})"
    hide = HideRecipients(tuple(sorted(hidden)), to, note)
    split = settings.mode == "split" and settings.rewrite
    steps = (hide, SplitPerRecipient()) if split else (hide,)
    return [Finding(
        check=NAME, rule="split" if split else ("moved" if settings.rewrite else "exposed"),
        action=settings.action, clause=CLAUSE, severity="high",
        message=f"the message showed {what} to every recipient in To/Cc",
        advice="put parents and other outside recipients in Bcc, or use the school's "
               "messaging system for whole-class mail",
        evidence=f"{parents} parent, {external} external; {len(hidden)} hidden",
        steps=steps if settings.rewrite else ())]
