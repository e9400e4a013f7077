"""Held mail: the message bytes sealed with AES-GCM (an fsync'd 0600 file beside the SQLite
store, or a row of the PostgreSQL store) and its envelope and findings in the store (the
subject sealed too).

`hold` returns only once both are durable, because the SMTP 250 that follows promises the
sender's server that the message is safe with us.
"""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailguard.model import STEPS, Client, Envelope, Finding, Mail, Step
from mailguard.store import audit
from mailguard.store.backend import Store
from mailguard.store.heldfiles import held_files
from mailguard.store.sealing import Sealer, SealError

STATUSES = ("held", "released", "rejected", "deleted", "expired")
# Language categories that are the safeguarding lead's business, whatever the trust's actions.
SAFEGUARDING = ("language.threats:", "language.extremism:")


def is_safeguarding(finding: Finding) -> bool:
    return finding.alert or finding.rule_id.startswith(SAFEGUARDING)


@dataclass(frozen=True)
class Held:
    id: str
    ts: float
    status: str
    reason: str
    sender: str
    recipients: list[str]
    held_recipients: list[str]
    client: str
    auth_user: str | None
    size: int
    findings: list[dict[str, Any]]
    file: str
    updated: float | None
    note: str | None
    last_reply: str | None
    subject: str | None = None
    assigned_to: str | None = None
    safeguarding: int = 0
    # What was decided would be done to it if it goes (None: held before plans were kept).
    plan: tuple[Step, ...] | None = None
    node: str | None = None   # the gateway that held it

    @classmethod
    def from_row(cls, row: Any) -> Held:
        d = dict(row)
        d.pop("subject_hint", None)
        d.pop("checks", None)   # the findings say the same, in full
        for key in ("recipients", "held_recipients", "findings"):
            d[key] = json.loads(d[key])
        d["plan"] = None if d.get("plan") is None else plan_from_json(d["plan"])
        return cls(**d)

    def mail(self, raw: bytes, recipients: list[str] | None = None) -> Mail:
        """The held message as the checks and the relay take it (to `recipients`, or to all)."""
        return Mail(id=self.id, envelope=Envelope(self.sender, tuple(
            self.recipients if recipients is None else recipients)),
            client=Client(ip=self.client or "", auth_user=self.auth_user), raw=raw)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "status": self.status, "reason": self.reason,
                "sender": self.sender, "recipients": len(self.recipients),
                "held_recipients": len(self.held_recipients), "size": self.size,
                "rules": [f["rule"] for f in self.findings]}


def checks_column(findings: tuple[Finding, ...]) -> str:
    """The checks that fired, as the `checks` column keeps them: ",identity,language,"."""
    return "," + ",".join(sorted({f.check for f in findings})) + ","


def _finding_dict(f: Finding) -> dict[str, Any]:
    return {"rule": f.rule_id, "action": f.action.value, "clause": f.clause,
            "message": f.message, "advice": f.advice, "evidence": f.evidence,
            "severity": f.severity, "alert": f.alert, "heading": f.heading}


_STEP_NAMES = {cls.__name__: cls for cls in STEPS}


def plan_to_json(plan: tuple[Step, ...]) -> str:
    """A plan as stored: each step's kind and its fields."""
    return json.dumps([{"step": type(s).__name__, **dataclasses.asdict(s)} for s in plan])


def plan_from_json(text: str) -> tuple[Step, ...]:
    """The stored plan back as steps (lists become the tuples the steps hold)."""
    steps = []
    for item in json.loads(text):
        cls = _STEP_NAMES[item.pop("step")]
        steps.append(cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}))
    return tuple(steps)


class Quarantine:
    def __init__(self, db: Store, data_dir: Path, key: bytes,
                 old_keys: tuple[bytes, ...] = (), node: str = "") -> None:
        self.db = db
        self.node = node
        self.sealer = Sealer(key, old_keys)
        self.files = held_files(db, data_dir)

    async def hold(self, mail: Mail, findings: tuple[Finding, ...], reason: str,
                   plan: tuple[Step, ...] = ()) -> str:
        name = f"{mail.id}.eml"
        sealed = await asyncio.to_thread(self.sealer.seal, mail.raw, mail.id)
        if not self.files.in_store:   # a file, fsync'd before its record exists
            await self.files.write(name, sealed)
        recipients = json.dumps(list(mail.envelope.recipients))
        async with self.db.transaction() as tx:
            if self.files.in_store:   # the content and its record in one commit
                await self.files.write(name, sealed, tx)
            await tx.run(
                "INSERT INTO quarantine (id, ts, status, reason, sender, recipients,"
                " held_recipients, client, auth_user, size, findings, file, updated, subject,"
                " safeguarding, plan, node, checks)"
                " VALUES (?, ?, 'held', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (mail.id, mail.received_at, reason, mail.envelope.sender, recipients,
                 recipients, mail.client.ip, mail.client.auth_user, len(mail.raw),
                 json.dumps([_finding_dict(f) for f in findings]), name, time.time(),
                 self.sealer.seal_text(mail.subject[:300], mail.id),
                 int(any(map(is_safeguarding, findings))), plan_to_json(plan), self.node or None,
                 checks_column(findings)))
            await tx.run_many(
                "INSERT INTO held_rules (qid, check_name, rule) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING", [(mail.id, f.check, f.rule_id) for f in findings])
        return mail.id

    def held(self, row: Any) -> Held:
        """A record as reviewers read it: its subject opened."""
        held = Held.from_row(row)
        return dataclasses.replace(held, subject=self.sealer.open_text(held.subject, held.id))

    async def get(self, qid: str) -> Held | None:
        row = await self.db.one("SELECT * FROM quarantine WHERE id = ?", (qid,))
        return self.held(row) if row else None

    async def list(self, status: str | None = "held") -> list[Held]:
        sql, args = "SELECT * FROM quarantine ORDER BY ts", ()
        if status:
            sql, args = "SELECT * FROM quarantine WHERE status = ? ORDER BY ts", (status,)
        return [self.held(r) for r in await self.db.all(sql, args)]

    async def read(self, held: Held) -> bytes | None:
        """The held message's bytes, or None once retention has removed them. Raises
        SealError if they were sealed under a key this instance does not have."""
        if not held.file or (blob := await self.files.read(held.file)) is None:
            return None
        return await asyncio.to_thread(self.sealer.open, blob, held.id)

    async def update(self, qid: str, *, status: str, held_recipients: list[str] | None = None,
                     note: str | None = None, last_reply: str | None = None) -> None:
        assert status in STATUSES
        sets = ["status = ?", "updated = ?"]
        args: list[Any] = [status, time.time()]
        if held_recipients is not None:
            sets.append("held_recipients = ?")
            args.append(json.dumps(held_recipients))
        if note is not None:
            sets.append("note = ?")
            args.append(note)
        if last_reply is not None:
            sets.append("last_reply = ?")
            args.append(last_reply)
        await self.db.run(f"UPDATE quarantine SET {', '.join(sets)} WHERE id = ?", (*args, qid))

    async def assign(self, qid: str, reviewer: str | None) -> None:
        await self.db.run("UPDATE quarantine SET assigned_to = ?, updated = ? WHERE id = ?",
                          (reviewer, time.time(), qid))

    async def comment(self, qid: str, actor: str, text: str) -> None:
        await self.db.run("INSERT INTO comments (qid, ts, actor, text) VALUES (?, ?, ?, ?)",
                          (qid, time.time(), actor, text))

    async def comments(self, qid: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.db.all(
            "SELECT ts, actor, text FROM comments WHERE qid = ? ORDER BY seq", (qid,))]

    async def false_positive(self, qid: str, rule: str, actor: str) -> None:
        """A reviewer's word that this rule misfired here: IT sees it in the term statistics."""
        await self.db.run("INSERT INTO false_positives (qid, rule, ts, actor) VALUES (?, ?, ?, ?)",
                          (qid, rule, time.time(), actor))

    async def rekey(self, actor: str) -> tuple[int, int, list[str]]:
        """Seal every held file and subject under the current key, so an old key can go:
        each file is replaced durably (temporary file, fsync, rename), each subject in its
        own transaction. (files resealed, subjects resealed, problems)."""
        rows = [tuple(r) for r in await self.db.all("SELECT id, file, subject FROM quarantine")]
        files = subjects = 0
        problems = []
        for qid, name, subject in rows:
            done = files + subjects
            try:
                blob = await self.files.read(name) if name else None
                if blob is not None and not self.sealer.current(blob):
                    fresh = await asyncio.to_thread(self.sealer.reseal, blob, qid)
                    await self.files.write(name, fresh)
                    files += 1
                if subject and not self.sealer.current_text(subject):
                    await self.db.run("UPDATE quarantine SET subject = ? WHERE id = ?",
                                      (self.sealer.reseal_text(subject, qid), qid))
                    subjects += 1
            except (SealError, ValueError, binascii.Error) as e:
                problems.append(f"{qid}: {e}")
            if files + subjects > done:   # the message's own trail says it was re-sealed
                await audit.record(self.db, actor, "rekey", qid, "sealed under the current key")
        return files, subjects, problems

    async def remove_file(self, held: Held) -> None:
        if held.file:
            await self.files.remove(held.file)

    async def expire(self, before: float) -> int:
        """Retention: held mail older than `before` expires; every message file past it goes."""
        old = [Held.from_row(r) for r in await self.db.all(
            "SELECT * FROM quarantine WHERE ts < ? AND file != ''", (before,))]
        now = time.time()
        done = 0
        for held in old:
            if not self.files.in_store:
                await self.remove_file(held)   # the file first: never a record without it
            async with self.db.transaction() as tx:
                # Every node runs retention: the first to take a message's row purges it,
                # and the others find its file already gone.
                if not await tx.run(
                        "UPDATE quarantine SET file = '', updated = ?, status = CASE status"
                        " WHEN 'held' THEN 'expired' ELSE status END WHERE id = ? AND file != ''",
                        (now, held.id)):
                    continue
                if self.files.in_store:
                    await self.files.remove(held.file, tx)
                await audit.record(tx, "retention", "purge", held.id,
                                   f"content removed after retention (was {held.status})")
                done += 1
        return done
