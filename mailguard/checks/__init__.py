"""The checks: one module per policy concern, listed explicitly (no import scanning).

Each module exposes NAME, `settings_from(section, organisation) -> Settings` (its
[checks.NAME] table, which has at least `action`), `READS_BODY` and
`async def inspect(mail, settings) -> list[Finding]`. Checks never change the message.
"""

from __future__ import annotations

from types import ModuleType

from mailguard.checks import disclaimer, identity

# Order matters only for rewrites: header rewrites first, then bodies.
REGISTRY: dict[str, ModuleType] = {
    identity.NAME: identity,
    disclaimer.NAME: disclaimer,
}
