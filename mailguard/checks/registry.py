"""Every check, listed explicitly (no import scanning), in the order they run."""

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
    misdirected,
    personal,
)

# The order checks run in (cheap envelope checks first). It decides nothing else: the plan's
# steps are ordered by the policy, and whether mail is personal is one shared reading.
REGISTRY: dict[str, ModuleType] = {
    identity.NAME: identity,
    limits.NAME: limits,
    attachments.NAME: attachments,
    antivirus.NAME: antivirus,
    confidential.NAME: confidential,
    credentials.NAME: credentials,
    disclosure.NAME: disclosure,
    language.NAME: language,
    misdirected.NAME: misdirected,
    personal.NAME: personal,
    disclaimer.NAME: disclaimer,
    bcc.NAME: bcc,
}

# The checks whose findings may carry plan steps: mail held before plans were stored gets its
# plan on release from these alone (the reviewer has overruled the rest).
REWRITERS = (personal.NAME, disclaimer.NAME, bcc.NAME)
