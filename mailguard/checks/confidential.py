"""Confidential attachments must be encrypted before they leave the school, and never go to
personal (free-mail) accounts.

vale section 5.1: "Any attachments containing sensitive or confidential information should be
encrypted so that the information is only accessible by the intended recipient." bourne
section 5b(iv) and soke agree; vale section 5.1 and bourne appendix B rule out school
business through personal email accounts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from mailguard.files import report
from mailguard.files.limits import Limits
from mailguard.mime.views import views
from mailguard.model import Action, Finding, Mail
from mailguard.school.directory import role_of
from mailguard.settings.schema import CheckOptions, Chosen, Whole
from mailguard.settings.shared import OrganisationSettings, Shared
from mailguard.text import identifiers

NAME = "confidential"
READS_BODY = True
CLAUSE = "vale section 5.1; bourne section 5b(iv); soke 'E-mail etiquette'"
FREEMAIL_CLAUSE = "vale section 5.1; bourne appendix B"
ENCRYPT_ADVICE = ("encrypt the attachment with a password (Word, Excel and PDF can all do "
                  "this, or use a password-protected zip) and send the password by another "
                  "route, such as a phone call or text")


@dataclass(frozen=True)
class Settings:
    action: Action            # confidential, not encrypted, leaving the organisation
    encrypted: Action         # confidential and encrypted: normally just logged
    freemail: Action          # confidential data to a personal (free-mail) account
    in_body: Action           # identifiers typed into the message body itself
    min_rows: int
    organisation: OrganisationSettings
    directory: Any
    limits: Limits


class Options(CheckOptions):
    """`[checks.confidential]`: pupil data and other confidential attachments."""

    action: Chosen | None = None
    """Confidential, not encrypted, leaving the trust (default: quarantine when the table is
    there)."""
    encrypted: Chosen = Action.LOG
    """Confidential and encrypted."""
    freemail: Chosen = Action.QUARANTINE
    """Confidential data to a personal (free-mail) account, encrypted or not."""
    in_body: Chosen | None = None
    """Identifiers typed into the message body itself (default: as action)."""
    min_rows: Whole = Field(5, ge=1)
    """Rows of pupil data that make a spreadsheet confidential."""


def build(o: Options, shared: Shared) -> Settings:
    action = o.chosen("action", Action.QUARANTINE)
    return Settings(
        action=action, encrypted=o.encrypted, freemail=o.freemail,
        in_body=o.in_body if o.in_body is not None else action, min_rows=o.min_rows,
        organisation=shared.organisation, directory=shared.directory, limits=shared.inspection)



def file_signals(file: report.FileReport, min_rows: int) -> identifiers.Signals:
    signals = identifiers.Signals()
    identifiers.scan_text(file.name, signals, capitals_only=False)
    identifiers.scan_text(file.extracted.properties, signals, capitals_only=False)
    identifiers.scan_text(file.extracted.text, signals)
    for table in file.extracted.tables:
        identifiers.scan_table(table.headers, table.rows, f"{file.name} {table.where}".strip(),
                             signals, min_rows=min_rows)
    return signals


def judge(mail: Mail, files: report.MailFiles, settings: Settings) -> list[Finding]:
    recipients = mail.envelope.recipients
    outside = [r for r in recipients if not settings.organisation.owns(r)]
    # A parent's or a supplier's own Gmail is how they are reached; school data to anyone
    # else's free-mail account (a teacher's own, above all) is what the clause forbids.
    freemail = sorted({r.rpartition("@")[2].lower() for r in recipients
                       if role_of(settings.directory, r) not in ("parent", "supplier")}
                      & settings.organisation.freemail_domains)
    if not outside or files.encrypted_message:
        return []
    text = views(mail)
    subject = identifiers.Signals()
    identifiers.scan_text(mail.subject, subject, capitals_only=False)
    identifiers.scan_text(text.own, subject)
    found: list[Finding] = []
    for file in files.walk():
        # An archive is judged by its files, and by what its own name says of them: a zip
        # called "CONFIDENTIAL SEN register" is marked, and must be encrypted whole (a
        # partly encrypted one, whose plain members anyone can open, is not).
        signals = file_signals(file, settings.min_rows)
        if not signals and subject.markings and not file.members and file.family not in (
                "image", "media"):   # a marked message's files, not its signature logo
            signals.markings = {f"{m} (in the message)" for m in subject.markings}
        if not signals:
            continue
        severity = "high" if signals.special else "medium"
        what = f"{file.path} holds confidential or personal data ({signals.describe()})"
        if freemail:
            found.append(Finding(
                check=NAME, rule="freemail", action=settings.freemail, clause=FREEMAIL_CLAUSE,
                severity=severity, evidence=f"{file.path}: {signals.describe()}",
                message=f"{what} and is addressed to a personal email account "
                        f"({', '.join(freemail)})",
                advice="send school data only to school or organisation addresses; if it must "
                       "go to this person, ask the DPO"))
        rule, action = ("encrypted", settings.encrypted) if file.encrypted else (
            "unencrypted", settings.action)
        found.append(Finding(
            check=NAME, rule=rule, action=action, clause=CLAUSE, severity=severity,
            evidence=f"{file.path}: {signals.describe()}; "
                     f"{file.encryption.how or 'not encrypted'}",
            message=what + (" and is encrypted" if file.encrypted else
                            " and is not encrypted, going outside the school"),
            advice="nothing to do" if file.encrypted else ENCRYPT_ADVICE))
    # In the text itself only validated numbers count: "born on 3/10/2026" in staff news
    # is not a pupil record.
    body = identifiers.Signals(identifiers=Counter(
        {kind: n for kind, n in subject.identifiers.items() if kind != identifiers.DOB_LABEL}))
    if body:
        found.append(Finding(
            check=NAME, rule="in_body", action=settings.in_body, clause=CLAUSE, severity="medium",
            evidence=f"message text: {body.describe()}",
            message=f"the message itself contains personal identifiers ({body.describe()}) "
                    "and is going outside the school",
            advice="put personal details in an encrypted attachment instead of the email text"))
    return [f for f in found if f.action is not Action.OFF]


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    return judge(mail, await report.of(mail, settings.limits), settings)
