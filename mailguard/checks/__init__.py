"""The checks: one module per policy concern, listed explicitly (no import scanning).

Each module exposes NAME, `settings_from(section, shared) -> Settings` (its [checks.NAME]
table, which has at least `action`; `shared` holds the organisation and directory), `READS_BODY` and
`async def inspect(mail, settings) -> list[Finding]`. Checks never change the message.
"""

from __future__ import annotations

from types import ModuleType

from mailguard.checks import (
    antivirus,
    attachments,
    bcc,
    confidential,
    credentials,
    disclaimer,
    disclosure,
    identity,
    language,
    limits,
    personal,
)

# Order matters for rewrites, which are applied in this order: the personal check's subject
# rewrite comes before the disclaimer's (which then re-reads the tree; only for that mail).
# Whether mail is personal is one shared reading (checks.personal.reading), not check order.
REGISTRY: dict[str, ModuleType] = {
    identity.NAME: identity,
    limits.NAME: limits,
    attachments.NAME: attachments,
    antivirus.NAME: antivirus,
    confidential.NAME: confidential,
    credentials.NAME: credentials,
    disclosure.NAME: disclosure,
    language.NAME: language,
    personal.NAME: personal,
    disclaimer.NAME: disclaimer,
    bcc.NAME: bcc,
}

# The checks whose findings may carry a rewrite: a release from quarantine re-runs only these
# (the reviewer has overruled the rest, and a release is not a new send for the hourly count).
REWRITERS = (personal.NAME, disclaimer.NAME, bcc.NAME)
