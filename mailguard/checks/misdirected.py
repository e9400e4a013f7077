"""Mail going to the wrong person: a report on one pupil addressed to another pupil's parent,
an address one slip from the one meant, personal data to someone the sender has never
written to. vale section 5.1: mail sent in error that holds personal data is a data breach
(clause 24 of CLAUSES.md); "data emailed to the wrong recipient" is among the incidents
schools report to the ICO most.

Three signals, each its own rule and action:
  pupil      the message or an attachment is about a pupil (full name or UPN) and goes to a
             parent linked to other pupils but not that one (the directory's `pupils`);
  lookalike  a recipient one or two edits from a directory address, one slip from a
             recent contact of the sender or from a mail provider's or the school's domain,
             or whose display name is a directory contact's at another address;
  unusual    personal data to an outside address the sender has never written to, or to
             the one outside address among colleagues.
Evidence masks names and addresses; the message, which only the sender and the reviewers
see, names the recipient so the sender can put it right.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from mailguard.files import report
from mailguard.files.limits import Limits
from mailguard.mime.views import views
from mailguard.model import Action, Finding, Mail
from mailguard.school.directory import role_of
from mailguard.school.lookalike import Lookalikes, Near
from mailguard.school.pupils import Families, Reading
from mailguard.settings.schema import CheckOptions, Chosen, Texts, Whole
from mailguard.settings.shared import OrganisationSettings, Shared
from mailguard.store.history import History
from mailguard.text import identifiers

NAME = "misdirected"
READS_BODY = True
CLAUSE = "vale section 5.1"
CHECK_FIRST = "check the address before you send it again"
_REPLY = re.compile(r"(?i)\s*(?:re|aw|sv|antw|r)\s*(?:\[\d+\])?\s*:")   # Re:, AW:, SV: …


@dataclass(frozen=True)
class Settings:
    pupil: Action               # about a pupil, to a parent of other pupils
    lookalike: Action           # a recipient that looks like a slip of another address
    lookalike_personal: Action  # … when the message holds personal data
    unusual: Action             # personal data to a first-time or lone outside recipient
    history_min: int            # a sender's contacts before "never written to" means much
    organisation: OrganisationSettings
    directory: Any
    families: Families
    lookalikes: Lookalikes | None   # None when the check is off
    history: History | None
    limits: Limits
    min_rows: int

    @property
    def action(self) -> Action:
        """The strongest of the signals' actions: the check runs unless all are off."""
        return max((self.pupil, self.lookalike, self.lookalike_personal, self.unusual),
                   key=lambda a: a.rank)


class Options(CheckOptions):
    """`[checks.misdirected]`: mail addressed to the wrong person."""

    action: Chosen | None = None
    """The whole check: "off" turns every signal off; another action is the default of
    pupil and lookalike_personal."""
    pupil: Chosen | None = None
    """About a pupil, addressed to a parent of other pupils (default: quarantine)."""
    lookalike: Chosen | None = None
    """A recipient that looks like a slip of another address (default: log)."""
    lookalike_personal: Chosen | None = None
    """The same, when the message holds personal data (default: quarantine)."""
    unusual: Chosen | None = None
    """Personal data to an outside address the sender has never written to, or to the one
    outside address among colleagues (default: log)."""
    known_domains: Texts = ()
    """Domains never taken for a slip of another (a partner whose name is near a provider's)."""
    history: bool = True
    """Keep recipient history (keyed hashes, never addresses): needed by `unusual` and by
    look-alikes of a recent contact."""
    history_min: Whole = Field(20, ge=0)
    """Recipients a sender must have written to before a new one counts as unusual."""


# One history per store, kept across reloads (SIGHUP builds new settings, not a new history).
_HISTORIES: dict[str, History] = {}


def history_for(shared: Shared) -> History:
    where = str(shared.storage.url if shared.storage is not None and shared.storage.shared
                else shared.data_dir)
    return _HISTORIES.setdefault(where, History())


def build(o: Options, shared: Shared) -> Settings:
    confidential = shared.checks.get("confidential")
    hold = o.action if o.action is not None else Action.QUARANTINE
    note = Action.OFF if o.action is Action.OFF else Action.LOG
    actions = {"pupil": o.chosen("pupil", hold), "lookalike": o.chosen("lookalike", note),
               "lookalike_personal": o.chosen("lookalike_personal", hold),
               "unusual": o.chosen("unusual", note)}
    on = any(a is not Action.OFF for a in actions.values())
    # Off, it reads nothing: no index of the directory, no history, no edit distances.
    contacts = shared.directory.contacts.values() if shared.directory is not None and on \
        else ()
    return Settings(
        **actions, history_min=o.history_min,
        organisation=shared.organisation, directory=shared.directory,
        families=Families.of(contacts),
        lookalikes=Lookalikes(own_domains=shared.organisation.domains,
                              known_domains=(*o.known_domains,
                                             *shared.organisation.freemail_domains),
                              contacts=((c.email, c.name) for c in contacts)) if on else None,
        history=history_for(shared) if o.history and on else None,
        limits=shared.inspection, min_rows=getattr(confidential, "min_rows", 5))


def mask(address: str) -> str:
    """j.smith@gmail.com → j******@gmail.com: which recipient, not who."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'*' * max(len(local) - 1, 2)}@{domain}"


def initials(name: str) -> str:
    return " ".join(w[0].upper() + "." for w in name.split() if w[:1].isalpha())


@dataclass
class _Read:
    """What the check has read of one message, each part only when a signal needs it."""

    mail: Mail
    settings: Settings
    _documents: list[tuple[str, Reading]] | None = None
    _confidential: str | None = None
    _known: dict[str, bool] = dataclasses.field(default_factory=dict)

    def known(self, rcpt: str) -> bool:
        """Whether the sender has written to `rcpt` before (one keyed hash, once a message)."""
        history = self.settings.history
        if history is None:
            return False
        if rcpt not in self._known:
            self._known[rcpt] = history.known(self.mail.envelope.sender, rcpt)
        return self._known[rcpt]

    async def documents(self) -> list[tuple[str, Reading]]:
        """(where, reading) for the message text and each attachment."""
        if self._documents is None:
            families, mail = self.settings.families, self.mail
            besides = functools.cache(lambda: self._people())
            text = views(mail)
            # A reply's quoted thread is what its recipients wrote or were sent already ("my
            # daughter says Oliver Smith pushed her"); a forward's is new to them.
            quoted = "" if _REPLY.match(mail.subject) else text.quoted
            self._documents = [("the message", families.read(
                f"{mail.subject}\n{text.own}\n{quoted}", besides=besides))]
            for file in (await self.files()).walk():
                if file.members:
                    continue   # an archive: its files are read one by one
                reading = families.read(f"{file.name}\n{file.extracted.text}", besides=besides)
                if reading.mentions:
                    self._documents.append((f"the attachment {file.path}", reading))
        return self._documents

    def _people(self) -> list[str]:
        """The names of the people the message is from and to, as the headers and the
        directory give them: "Dear Erin Jackson" greets a parent, it names no pupil."""
        mail, directory = self.mail, self.settings.directory
        names = [name for field in ("From", "To", "Cc") for name, _ in mail.addresses(field)]
        if directory is not None:
            names += [c.name for a in (mail.envelope.sender, *mail.envelope.recipients)
                      if (c := directory.contacts.get(a.lower())) is not None]
        return names

    async def files(self) -> report.MailFiles:
        return await report.of(self.mail, self.settings.limits)

    async def confidential(self) -> str:
        """The confidential check's signs of personal data, in words ("" for none): marked,
        special-category, identifiers, a pupil table."""
        if self._confidential is None:
            from mailguard.checks.confidential import file_signals

            signals = identifiers.Signals()
            identifiers.scan_text(self.mail.subject, signals, capitals_only=False)
            identifiers.scan_text(views(self.mail).own, signals)
            said = [signals.describe()] if signals else []
            for file in (await self.files()).walk():
                found = file_signals(file, self.settings.min_rows)
                if found:
                    said.append(f"{file.path}: {found.describe()}")
            self._confidential = "; ".join(said)
        return self._confidential

    async def personal(self) -> str:
        """What personal data the message holds, in words ("" for none): the confidential
        check's signs, or a pupil named (a letter about a child is that child's data)."""
        said = await self.confidential()
        if not said and self.settings.families and any(
                r.mentions for _, r in await self.documents()):
            said = "it names a pupil"
        return said


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    read = _Read(mail, settings)
    flagged: set[str] = set()   # recipients already found wrong: one finding each
    found = await _pupil(read, settings, flagged)
    found += await _lookalikes(read, settings, flagged)
    found += await _unusual(read, settings, flagged)
    return [f for f in found if f.action is not Action.OFF]


async def _pupil(read: _Read, settings: Settings, flagged: set[str]) -> list[Finding]:
    families = settings.families
    parents = [r for r in read.mail.envelope.recipients if r.lower() in families.children]
    if settings.pupil is Action.OFF or not parents:
        return []
    documents = [(where, r) for where, r in await read.documents() if r.about]
    if not documents:
        return []
    found = []
    for rcpt in parents:
        own = families.children[rcpt.lower()]
        for where, reading in documents:
            if any(m.pupils & own for m in reading.mentions):
                continue
            if where == "the message" and families.forename_in(reading, own):
                continue   # "Amelia has settled in well; Oliver Smith's mum asked …"
            names = [m.name for m in reading.mentions]
            theirs = sorted({families.pupils[k].name for k in own})
            meant = sorted({p for m in reading.mentions for k in m.pupils
                            for p in families.parents.get(k, ())} - {rcpt.lower()})
            found.append(Finding(
                check=NAME, rule="pupil", action=settings.pupil, clause=CLAUSE,
                severity="high",
                evidence=f"{mask(rcpt)} parent of {', '.join(map(initials, theirs))}; "
                         f"{'message' if where == 'the message' else 'attachment'} about "
                         f"{', '.join(map(initials, names))}",
                message=f"{where[:1].upper()}{where[1:]} is about {_and(names)}, but {rcpt} "
                        f"is the parent of {_and(theirs)}, not of "
                        f"{'them' if len(names) > 1 else names[0]}",
                advice=f"check the recipient: {where} is about a pupil whose parents are "
                       f"{_and(meant[:3]) if meant else 'not in the directory'}; "
                       f"{CHECK_FIRST}"))
            flagged.add(rcpt.lower())
            break   # one finding per recipient is enough to put it right
    return found


async def _lookalikes(read: _Read, settings: Settings, flagged: set[str]) -> list[Finding]:
    if settings.lookalikes is None or (settings.lookalike is Action.OFF
                                       and settings.lookalike_personal is Action.OFF):
        return []
    mail, history = read.mail, settings.history
    sender = mail.envelope.sender
    names = {a.lower(): n for field in ("To", "Cc") for n, a in mail.addresses(field)}
    found = []
    for rcpt in mail.envelope.recipients:
        if rcpt.lower() in flagged:
            continue
        known = read.known(rcpt)
        listed = role_of(settings.directory, rcpt) is not None
        near: Near | None = settings.lookalikes.name(names.get(rcpt.lower(), ""), rcpt)
        if near is None and not known and not listed:
            near = settings.lookalikes.domain(rcpt) or settings.lookalikes.address(rcpt)
            if near is None and history is not None and history.near(sender, rcpt):
                near = Near("history", "")
        if near is None:
            continue
        personal = await read.personal()
        action = settings.lookalike_personal if personal else settings.lookalike
        found.append(Finding(
            check=NAME, rule="lookalike", action=action, clause=CLAUSE,
            severity="high" if personal else "low",
            evidence=f"{mask(rcpt)} {_why(near, masked=True)}"
                     + ("; holds personal data" if personal else ""),
            message=f"{rcpt} {_why(near)}" + (f"; the message holds personal data ({personal})"
                                               if personal else ""),
            advice=f"check the spelling of {rcpt}; {CHECK_FIRST}"))
        flagged.add(rcpt.lower())
    return found


def _why(near: Near, masked: bool = False) -> str:
    meant = mask(near.meant) if masked and "@" in near.meant else near.meant
    if near.kind == "domain":
        return f"is one slip from {meant} (a domain typo?)"
    if near.kind == "address":
        return (f"is {near.edits} letter{'s' if near.edits > 1 else ''} away from {meant}, "
                "an address in the school's directory")
    if near.kind == "name":
        return f"has the display name of a directory contact whose address is {meant}"
    return "is one slip from an address the sender has written to before"


async def _unusual(read: _Read, settings: Settings, flagged: set[str]) -> list[Finding]:
    if settings.unusual is Action.OFF:
        return []
    mail, history, org = read.mail, settings.history, settings.organisation
    recipients = mail.envelope.recipients
    outside = [r for r in recipients if not org.owns(r)]
    if not outside:
        return []
    sender = mail.envelope.sender
    experienced = history is not None and history.contacts(sender) >= settings.history_min
    lone = len(outside) == 1 and len(recipients) >= 3
    candidates = [r for r in outside if r.lower() not in flagged
                  and not read.known(r)
                  and (experienced or lone)]
    if not candidates:
        return []
    personal = await read.confidential()   # naming a pupil is every letter home: not enough
    if not personal:
        return []
    families = settings.families
    named = {k for _, r in await read.documents() for m in r.mentions for k in m.pupils} \
        if families else set()
    found = []
    for rcpt in candidates:
        if named & families.children.get(rcpt.lower(), frozenset()):
            continue   # the parent of the pupil it is about, new to this sender or not
        why = ("the one outside address among colleagues" if lone
               else "an address you have not written to before")
        found.append(Finding(
            check=NAME, rule="unusual", action=settings.unusual, clause=CLAUSE,
            severity="medium",
            evidence=f"{mask(rcpt)}: {'lone outside recipient' if lone else 'first time'}; "
                     "holds personal data",
            message=f"the message holds personal data ({personal}) and {rcpt} is {why}",
            advice=f"make sure {rcpt} should have this; {CHECK_FIRST}"))
    return found


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
