"""The checks: one module per policy concern; `registry.py` lists them (no import scanning).

Each module exposes NAME; `Options`, its `[checks.NAME]` table as a schema (settings/schema);
`build(options, shared) -> Settings`, which makes what the check needs to run (lists,
templates; `shared` holds the organisation and directory); `READS_BODY`; and
`async def inspect(mail, settings) -> list[Finding]`. Checks never change the message.
"""

from __future__ import annotations
