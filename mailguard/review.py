"""What a reviewer does to held mail: release (per recipient), reject with a notice, delete.

Shared by the CLI now and the review desk later; every action leaves an audit row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import structlog

from mailguard import policy
from mailguard.checks.registry import REWRITERS
from mailguard.config import Settings
from mailguard.delivery.relay import Reply, open_upstream
from mailguard.model import Mail, Step
from mailguard.notices import notify
from mailguard.pipeline import inspect, outgoing, signer
from mailguard.store import audit
from mailguard.store.backend import Store
from mailguard.store.quarantine import Held, Quarantine
from mailguard.store.sealing import SealError

log = structlog.get_logger("mailguard.review")


async def release_plan(held: Held, mail: Mail, settings: Settings) -> tuple[Step, ...]:
    """What a released message gets done to it: the plan decided when it was held (the
    reviewer has overruled whatever held it, not the disclaimer or the BCC). Mail held before
    plans were kept gets one from the rewriting checks, run again on it alone."""
    if held.plan is not None:
        return held.plan
    only = {n: s for n, s in settings.checks.items() if n in REWRITERS}
    found = await inspect(mail, dataclasses.replace(settings, checks=only))
    return policy.plan_of(found if isinstance(found, tuple) else (), signer(mail, settings))


class ReviewError(Exception):
    """An action that cannot be taken on this message, worded for the reviewer."""


@dataclass
class ReleaseResult:
    delivered: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    reply: str = ""

    @property
    def complete(self) -> bool:
        return not self.refused and bool(self.delivered)


async def _held(quarantine: Quarantine, qid: str) -> Held:
    held = await quarantine.get(qid)
    if held is None:
        raise ReviewError(f"no held message with id {qid}")
    if held.status != "held":
        raise ReviewError(f"message {qid} is {held.status}, not held")
    return held


def _options(raw: bytes, held: Held) -> list[str]:
    options = []
    if any(b > 127 for b in raw):
        options.append("BODY=8BITMIME")
    if not (held.sender + "".join(held.held_recipients)).isascii():
        options.append("SMTPUTF8")
    return options


async def release(settings: Settings, quarantine: Quarantine, db: Store,
                  qid: str, actor: str, secret: bytes, only: list[str] | None = None,
                  address: str | None = None) -> ReleaseResult:
    """Deliver to each still-held recipient (or those of them in `only`); only those the
    upstream accepted count as released, and the rest stay held."""
    held = await _held(quarantine, qid)
    try:
        raw = await quarantine.read(held)
    except SealError as e:
        raise ReviewError(f"message {qid} cannot be opened: {e}") from None
    if raw is None:
        raise ReviewError(f"message {qid} has no stored content any more")
    targets = held.held_recipients if only is None else [
        r for r in held.held_recipients if r in only]
    if not targets:
        raise ReviewError(f"none of those recipients of {qid} is still held")
    mail = held.mail(raw, targets)
    result = ReleaseResult()
    upstream = open_upstream(settings.upstream, settings.server.hostname)
    try:
        txn = await upstream.begin(held.sender, _options(raw, held))
        if isinstance(txn, Reply):
            result.reply = str(txn)
            result.refused = {r: str(txn) for r in targets}
        else:
            for rcpt in targets:
                reply = await txn.add_recipient(rcpt, [])
                if reply.ok:
                    result.delivered.append(rcpt)
                else:
                    result.refused[rcpt] = str(reply)
            if result.delivered:
                # The stamp means a copy looping back through the gateway is not held again.
                plan = await release_plan(held, mail, settings)
                sent = await txn.send(await outgoing(mail, settings, secret, plan))
                result.reply = str(sent)
                if not sent.ok:
                    result.refused.update({r: str(sent) for r in result.delivered})
                    result.delivered = []
            else:
                await txn.abort()
    finally:
        await upstream.close()
    if result.delivered and held.sender and settings.notices.sender_released:
        try:
            await notify.send(settings, held.sender,
                              notify.release_notice(settings, held, result.delivered))
        except Exception as e:   # delivered is delivered; the courtesy notice may fail alone
            log.warning("release_notice_failed", id=qid, error=repr(e))
    remaining = [r for r in held.held_recipients if r not in result.delivered]
    await quarantine.update(qid, status="held" if remaining else "released",
                            held_recipients=remaining, last_reply=result.reply or None)
    await audit.record(db, actor, "release", qid,
                       f"delivered to {', '.join(result.delivered) or 'nobody'}; still held "
                       f"{len(remaining)}: {result.reply}"[:800], address)
    return result


async def reject(settings: Settings, quarantine: Quarantine, db: Store, qid: str,
                 actor: str, note: str, address: str | None = None) -> Reply | None:
    """Refuse for good and tell the sender why, with the reviewer's note."""
    held = await _held(quarantine, qid)
    reply = None
    if held.sender:
        reasons = [f"{f['message']} (policy: {f['clause']})" for f in held.findings]
        reply = await notify.send(settings, held.sender, notify.rejection_notice(
            settings, held.sender, qid, reasons, note))
    await quarantine.update(qid, status="rejected", note=note)
    await audit.record(db, actor, "reject", qid,
                       f"note: {note}; notice: {reply if reply else 'no sender to notify'}",
                       address)
    return reply


async def delete(quarantine: Quarantine, db: Store, qid: str, actor: str,
                 address: str | None = None) -> None:
    held = await quarantine.get(qid)
    if held is None:
        raise ReviewError(f"no held message with id {qid}")
    # Recorded first, then the content goes: a store that cannot record the deletion (a full
    # disk) leaves the message held and whole, not held and empty.
    await quarantine.update(qid, status="deleted")
    await audit.record(db, actor, "delete", qid, "", address)
    await quarantine.remove_file(held)
