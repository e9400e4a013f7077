"""Passwords given away by email: "password: …", "pwd=" in links, login and password pairs,
and spreadsheets with a password column (class lists of pupil logins).

leventhorpe 'Passwords and Personal Data': "do not disclose any passwords"; bourne
'Passwords': never give your password to a student or any other member of staff; soke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import hyperscan

from mailguard.files import report
from mailguard.files.limits import Limits
from mailguard.mime.views import views
from mailguard.model import Action, Finding, Mail
from mailguard.settings.schema import CheckOptions, Chosen
from mailguard.settings.shared import OrganisationSettings, Shared
from mailguard.text.phrases import Present

NAME = "credentials"
READS_BODY = True
CLAUSE = "leventhorpe 'Passwords and Personal Data'; bourne 'Passwords'; soke"
# A label, then "is", ":" or "=", then the secret itself (not a word such as "below").
_LABELLED = re.compile(
    r"(?i)\b(pass\s?words?|passwd|passcodes?|passphrases?|pass|pwd|pw|log\s?in\s?pin|pin(?:\s?code)?)"
    r"\s*(?:is|was|will be|[:=-])\s*[\"'“‘]?([^\s\"'”’<>]{4,64})")
_NOT_SECRETS = {"below", "above", "attached", "required", "reset", "expired", "protected",
                "change", "changed", "changes", "manager", "policy", "please", "needed",
                "the", "your", "same", "sent", "separately", "following", "removed", "later",
                "hint", "strength", "requirements", "here", "there", "unknown", "forgotten",
                "xxxx", "****", "none", "blank", "provided", "shared", "emailed", "texted"}
# Every label above holds one of these: a caseless pass in C settles most mail.
_LABEL_HINTS = Present((b"pass", b"pw", b"pin"), hyperscan.HS_FLAG_CASELESS, literal=True)
PASSWORD_COLUMNS = {"password", "passwords", "pwd", "initial password", "temp password",
                    "temporary password", "pin", "login pin", "passcode"}


@dataclass(frozen=True)
class Settings:
    action: Action      # leaving the organisation
    internal: Action    # to colleagues only
    organisation: OrganisationSettings
    limits: Limits


class Options(CheckOptions):
    """`[checks.credentials]`: passwords written into mail or attachments."""

    action: Chosen | None = None
    """To anyone outside the trust (default: quarantine when the table is there)."""
    internal: Chosen | None = None
    """To colleagues only (default: as action)."""


def build(o: Options, shared: Shared) -> Settings:
    action = o.chosen("action", Action.QUARANTINE)
    return Settings(action=action, internal=o.internal if o.internal is not None else action,
                    organisation=shared.organisation, limits=shared.inspection)


def _secret_like(value: str, label: str) -> bool:
    """A value that reads as a secret: not a plain word, not a mask, not a placeholder."""
    value = value.rstrip(".,;:!?)")
    if len(value) < 4 or value.lower() in _NOT_SECRETS or set(value) <= set("*x•.#-_"):
        return False
    if label.lower().startswith("pin"):
        return value.isdigit() and 4 <= len(value) <= 8
    has_digit = any(c.isdigit() for c in value)
    has_symbol = any(not c.isalnum() for c in value)
    mixed = value.lower() != value and value.upper() != value
    return has_digit or has_symbol or mixed


def masked(value: str) -> str:
    return value[:1] + "*" * (len(value.rstrip(".,;:!?)")) - 1)


def secrets(text: str) -> list[str]:
    """Each password-like value in the text, masked (the value itself goes nowhere)."""
    if not _LABEL_HINTS.found(text):
        return []   # most mail: no label at all, so no regex over it
    return [masked(m.group(2)) for m in _LABELLED.finditer(text)
            if _secret_like(m.group(2), m.group(1))]


def judge(mail: Mail, files: report.MailFiles, settings: Settings) -> list[Finding]:
    seen = views(mail)
    where = [("the message", seen.own)]
    where += [(f.path, f.extracted.text) for f in files.walk() if f.extracted.text]
    evidence = []
    for place, text in where:
        found = secrets(text)
        if found:
            evidence.append(f"{place}: {len(found)} ({', '.join(found[:3])})")
    for f in files.walk():
        for table in f.extracted.tables:
            columns = {h.strip().lower() for h in table.headers} & PASSWORD_COLUMNS
            if columns and table.rows:
                evidence.append(f"{f.path} {table.where}: {table.rows} rows with a "
                                f"{sorted(columns)[0]} column")
    if not evidence:
        return []
    outside = any(not settings.organisation.owns(r) for r in mail.envelope.recipients)
    action = settings.action if outside else settings.internal
    if action is Action.OFF:
        return []
    return [Finding(
        check=NAME, rule="password", action=action, clause=CLAUSE, severity="high",
        message="the message appears to give away a password",
        advice="never send passwords by email; for a pupil's or colleague's login, ask IT to "
               "reset it and hand it over in person; for a protected file, give the password "
               "by phone or text",
        evidence="; ".join(evidence))]


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    return judge(mail, await report.of(mail, settings.limits), settings)
