"""The checks: one module per policy concern, listed explicitly (no import scanning).

Each module exposes NAME, `settings_from(section, shared) -> Settings` (its [checks.NAME]
table, which has at least `action`; `shared` holds the organisation and directory), `READS_BODY` and
`async def inspect(mail, settings) -> list[Finding]`. Checks never change the message.
"""

from __future__ import annotations

from types import ModuleType

from mailguard.checks import bcc, disclaimer, identity

# Order matters only for rewrites: header rewrites first, then bodies.
REGISTRY: dict[str, ModuleType] = {
    identity.NAME: identity,
    bcc.NAME: bcc,
    disclaimer.NAME: disclaimer,
}
