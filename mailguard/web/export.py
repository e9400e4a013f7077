"""Subject-access export (UK GDPR Article 15): for one email address, a zip of every event
and held message that names it, for the DPO to review before disclosure. The export itself
is written to the audit log."""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from mailguard.store import audit
from mailguard.store.events import from_row
from mailguard.store.quarantine import Held, Quarantine
from mailguard.store.sealing import SealError
from mailguard.web.context import Desk
from mailguard.web.security import checked_form

ADDRESS = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+")
README = """Subject-access export from mailguard for {address}, made {when} by {actor}.

events.json   every transaction whose envelope sender is this address (mailguard's event log
              keeps envelope facts and rule ids only, never content)
held/ID.eml   each held message that names the address in its envelope or its content
held/ID.json  what mailguard recorded about it: findings, status, reviewers' actions

Review before disclosure: held messages may name other people, whose data may need redacting.
"""


async def _gather(db: Any, quarantine: Quarantine, address: str
                  ) -> tuple[list[dict[str, Any]], list[Held]]:
    events = [from_row(r) for r in await db.all(
        "SELECT * FROM events WHERE lower(sender) = ? ORDER BY ts", (address,))]
    everything = [quarantine.held(r) for r in await db.all(
        "SELECT * FROM quarantine ORDER BY ts")]
    needle = address.encode()

    found = []
    for held in everything:
        if held.sender.lower() == address or address in (r.lower() for r in held.recipients):
            found.append(held)
            continue
        try:
            raw = await quarantine.read(held) if held.file else None
        except SealError:
            continue   # sealed under a key this instance lacks: not searchable
        if raw is not None and await asyncio.to_thread(lambda r=raw: needle in r.lower()):
            found.append(held)
    return events, found


def _write(path: Path, address: str, actor: str, events: list[dict[str, Any]],
           held: list[tuple[Held, bytes | None, list[dict[str, Any]]]]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.txt", README.format(address=address, actor=actor,
                                               when=time.strftime("%Y-%m-%d %H:%M %Z")))
        z.writestr("events.json", json.dumps(events, indent=2, sort_keys=True))
        for item, raw, trail in held:
            record = {**item.__dict__, "audit": trail}
            z.writestr(f"held/{item.id}.json", json.dumps(record, indent=2, sort_keys=True))
            if raw is not None:
                z.writestr(f"held/{item.id}.eml", raw)


def routes(desk: Desk) -> list[Route]:
    async def export(request: Request) -> Response:
        who = await desk.require(request, "export")
        if request.method == "GET":
            return desk.page(request, "export.html", who)
        form = await checked_form(request)
        address = str(form.get("address", "")).strip().lower()
        if not ADDRESS.fullmatch(address) or len(address) > 320:
            raise HTTPException(400, "address: give one email address, e.g. parent@example.com")
        db, quarantine = await desk.store()
        folder = desk.settings().storage.data_dir
        events, found = await _gather(db, quarantine, address)
        held = [(h, await quarantine.read(h) if h.file else None,
                 await audit.trail(db, h.id)) for h in found]   # each opened above already
        fd, name = tempfile.mkstemp(prefix="export-", suffix=".zip", dir=folder)
        os.close(fd)   # mkstemp makes it 0600, inside the 0700 data folder
        await asyncio.to_thread(_write, Path(name), address, who.name, events, held)
        await desk.audit(request, who, "export", None,
                         f"subject access for {address}: {len(events)} events, "
                         f"{len(held)} held messages")
        return FileResponse(name, media_type="application/zip",
                            filename=f"subject-access-{address}.zip",
                            background=BackgroundTask(os.unlink, name))

    return [Route("/export", export, methods=["GET", "POST"])]
