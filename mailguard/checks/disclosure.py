"""Staff giving pupils or parents their own contact details: a mobile number that is not one
of the school's, a personal email address, or social media accounts.

leventhorpe 'Personal Details': "do not give out your own personal details, such as mobile
phone number, personal e-mail address or social network details to pupils, parents, carers";
bourne 'Mobile Phones' and appendix B; vale section 5.1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import field_validator

from mailguard.files.report import attachment_parts
from mailguard.mime.views import views
from mailguard.model import Action, Finding, Mail
from mailguard.school.directory import role_of
from mailguard.settings.schema import CheckOptions, Chosen, Texts
from mailguard.settings.shared import OrganisationSettings, Shared

NAME = "disclosure"
READS_BODY = True
CLAUSE = "leventhorpe 'Personal Details'; bourne 'Mobile Phones' and appendix B; vale section 5.1"
_MOBILE = re.compile(r"(?<![\d+])(?:\+44\s?\(?0?\)?\s?|0044\s?|0)7\d{3}[\s.-]?\d{3}[\s.-]?\d{3}(?!\d)")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SOCIAL_LINK = re.compile(r"(?i)\b(?:facebook|fb|instagram|tiktok|snapchat|twitter|x|threads)"
                          r"\.com/(?!sharer|share|intent|home|login)@?([\w.]{2,40})")
_SOCIAL_NAMED = re.compile(r"(?i)\b(?:snapchat|snap|insta|instagram|tiktok|facebook|twitter)"
                           r"\s*(?:is|:|-|name)\s*@?([\w.]{3,30})")
_HANDLE = re.compile(r"(?<![\w.@/])@([A-Za-z_][\w]{2,29})\b")
# Left in the text of HTML mail by its style sheet: "@media", "@font-face" are not people.
_CSS = frozenset({"media", "font", "import", "page", "keyframes", "charset", "supports",
                  "namespace", "layer", "container", "property", "counter"})


@dataclass(frozen=True)
class Settings:
    action: Action              # personal details given to parents or pupils
    pupil_personal: Action      # a pupil written to at a non-school address
    to_self: Action             # work mail with attachments sent to the sender's own account
    school_numbers: frozenset[str]    # mobiles the school owns (trip phones), as digits
    school_handles: frozenset[str]    # the school's own social accounts, lower case
    organisation: OrganisationSettings
    directory: Any


def digits(number: str) -> str:
    """07700 900123, +44 7700 900123 and 0044 (0)7700-900-123 are one number: 07700900123."""
    raw = re.sub(r"\D", "", number)
    if raw.startswith("0044"):
        raw = raw[4:]
    elif raw.startswith("44"):
        raw = raw[2:]
    return "0" + raw.lstrip("0")


class Options(CheckOptions):
    """`[checks.disclosure]`: staff's own contact details given to parents or pupils."""

    action: Chosen | None = None
    """Personal details given (default: reject when the table is there)."""
    pupil_personal: Chosen | None = None
    """A pupil written to at a non-school address (default: as action)."""
    to_self: Chosen | None = None
    """Work mail with attachments sent to the sender's own account (default: quarantine)."""
    school_numbers: Texts = ()
    """Mobiles the school owns (trip phones): not personal details."""
    school_handles: Texts = ()
    """The school's own social accounts."""

    @field_validator("school_numbers")
    @classmethod
    def _mobiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for number in value:
            if not re.fullmatch(r"07\d{9}", digits(number)):
                raise ValueError(f"{number!r} is not a UK mobile number")
        return value


def build(o: Options, shared: Shared) -> Settings:
    action = o.chosen("action", Action.REJECT)
    return Settings(
        action=action,
        pupil_personal=o.pupil_personal if o.pupil_personal is not None else action,
        to_self=o.chosen("to_self", Action.QUARANTINE),
        school_numbers=frozenset(digits(n) for n in o.school_numbers),
        school_handles=frozenset(h.lstrip("@").lower() for h in o.school_handles),
        organisation=shared.organisation, directory=shared.directory)


def to_families(mail: Mail, settings: Settings) -> list[str]:
    """The recipients who are parents or pupils (by the directory, or, without one, anyone
    outside the organisation)."""
    if settings.directory is None:
        return [r for r in mail.envelope.recipients if not settings.organisation.owns(r)]
    return [r for r in mail.envelope.recipients
            if settings.directory.role_of(r) in ("parent", "pupil")]


def details(text: str, mail: Mail, settings: Settings) -> list[str]:
    """What in the sender's own words is a personal contact detail, described without it."""
    found: list[str] = []
    mobiles = {digits(m.group()) for m in _MOBILE.finditer(text)} - settings.school_numbers
    if mobiles:
        found.append(f"{len(mobiles)} mobile number{'s' if len(mobiles) > 1 else ''} not on "
                     "the school's list")
    recipients = {r.lower() for r in mail.envelope.recipients}
    role = partial(role_of, settings.directory)
    for address in {m.group().lower().rstrip(".") for m in _EMAIL.finditer(text)} - recipients:
        domain = address.rpartition("@")[2]
        if settings.organisation.owns(address) or role(address) in ("parent", "supplier"):
            continue
        if role(address) == "staff" or domain in settings.organisation.freemail_domains:
            found.append(f"a personal email address at {domain}")
    handles = {h.lower() for pattern in (_SOCIAL_LINK, _SOCIAL_NAMED, _HANDLE)
               for h in pattern.findall(text)} - settings.school_handles - _CSS
    if handles:
        found.append(f"{len(handles)} social media account{'s' if len(handles) > 1 else ''}")
    return found


def pupils_at_home(mail: Mail, settings: Settings) -> list[str]:
    """Recipients the directory lists as pupils, at an address outside the school."""
    if settings.directory is None:
        return []
    return [r for r in mail.envelope.recipients if settings.directory.role_of(r) == "pupil"
            and not settings.organisation.owns(r)]


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z]+", text.lower()) if t]


def own_accounts(mail: Mail, settings: Settings) -> list[str]:
    """Free-mail recipients that are the sender's own: the directory's personal address for
    the same person, or an address made of the sender's names (jo.smith → josmith74@…)."""
    sender = mail.envelope.sender.lower()
    froms = mail.addresses("From")
    display = froms[0][0] if froms else ""
    directory = settings.directory
    me = directory.contacts.get(sender) if directory else None
    names = _tokens(display) or _tokens(sender.partition("@")[0])
    out = []
    for r in mail.envelope.recipients:
        domain = r.rpartition("@")[2].lower()
        if domain not in settings.organisation.freemail_domains:
            continue
        known = directory.contacts.get(r.lower()) if directory else None
        if known and me and known.role == "staff" and known.name and known.name == me.name:
            out.append(r)
            continue
        local = re.sub(r"[^a-z]", "", r.partition("@")[0].lower())
        surname = next((n for n in reversed(names) if len(n) >= 3), "")
        if surname and surname in local and local.startswith(names[0][:1]):
            out.append(r)
    return out


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    found: list[Finding] = []
    for address in pupils_at_home(mail, settings):
        found.append(Finding(
            check=NAME, rule="pupil_personal", action=settings.pupil_personal,
            clause="bourne appendix B 'Email and Internet Use'", severity="medium",
            evidence=f"a pupil at {address.rpartition('@')[2]}",
            message="a pupil is written to at a personal address, not their school one",
            advice="write to pupils only at their school email address"))
    if settings.to_self is not Action.OFF and attachment_parts(mail.parts):
        mine = own_accounts(mail, settings)
        if mine:
            found.append(Finding(
                check=NAME, rule="to_self", action=settings.to_self,
                clause="vale section 5.1; bourne appendix B", severity="medium",
                evidence=f"attachments to {', '.join(m.rpartition('@')[2] for m in mine)}",
                message="work mail with attachments is going to what looks like your own "
                        "personal account",
                advice="keep school work in school systems (OneDrive, Google Drive or remote "
                       "access); ask IT how to work from home"))
    families = to_families(mail, settings)
    details_found = details(views(mail).own, mail, settings) if families else []
    if details_found:
        found.append(Finding(
            check=NAME, rule="personal_details", action=settings.action, clause=CLAUSE,
            severity="medium", evidence="; ".join(details_found),
            message="the message gives a parent or pupil personal contact details "
                    f"({'; '.join(details_found)})",
            advice="use the school's own email, phone and accounts with pupils and parents; "
                   "remove your personal number, address or accounts and send it again"))
    return [f for f in found if f.action is not Action.OFF]
