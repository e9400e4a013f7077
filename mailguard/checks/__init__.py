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

# Order matters only for rewrites: bodies first (they reuse the parsed tree of the bytes as
# received), then the top header block.
REGISTRY: dict[str, ModuleType] = {
    identity.NAME: identity,
    limits.NAME: limits,
    attachments.NAME: attachments,
    antivirus.NAME: antivirus,
    confidential.NAME: confidential,
    credentials.NAME: credentials,
    disclosure.NAME: disclosure,
    language.NAME: language,
    disclaimer.NAME: disclaimer,
    personal.NAME: personal,   # its subject tag is a header rewrite: after the bodies
    bcc.NAME: bcc,
}
