"""The only orchestrator: parse → inspect → decide → stamp → relay | hold | refuse → one event.

It answers the client's DATA with the SMTP reply, and never says 250 unless the upstream took
the message or it is durably in quarantine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
import time
from dataclasses import dataclass

import structlog

from mailguard import metrics, mime, model, policy
from mailguard.checks.registry import REGISTRY
from mailguard.config import Settings
from mailguard.delivery import trace
from mailguard.delivery.relay import Reply, Transaction, Upstream
from mailguard.mime import parts
from mailguard.model import (
    Action,
    AddDisclaimer,
    Envelope,
    Finding,
    Mail,
    Sign,
    SplitPerRecipient,
    Step,
    Verdict,
)
from mailguard.notices import notify, outbox
from mailguard.rewrite import recipients
from mailguard.rewrite.plan import carry_out, each_copy
from mailguard.store.events import Event, EventLog
from mailguard.store.quarantine import Quarantine

log = structlog.get_logger("mailguard.pipeline")

CHECK_TIMEOUT = 60.0
UNPARSEABLE_CLAUSE = "mailguard: mail it cannot read is never passed unchecked"


@dataclass(frozen=True)
class Outcome:
    reply: str
    verdict: str


_ASCII = str.maketrans({"§": "section ", "‘": "'", "’": "'", "“": '"', "”": '"', "–": "-",
                        "—": "-", "\r": " ", "\n": " "})


def smtp_reply(code: int, status: str, lines: list[str]) -> str:
    """A (multi-line) reply, each line short enough for RFC 5321 and plain ASCII."""
    wrapped: list[str] = []
    for line in lines:
        text = line.translate(_ASCII).encode("ascii", "replace").decode()
        # textwrap only for a long line: the usual reply is one short line, every message
        plain = len(text) <= 400 and text == text.strip() and not any(
            c in text for c in "\t\v\f")
        wrapped.extend([text] if plain else (textwrap.wrap(text, 400) or [""]))
    head = [f"{code}-{status} {w}" for w in wrapped[:-1]]
    return "\r\n".join([*head, f"{code} {status} {wrapped[-1]}"])


async def inspect(mail: Mail, settings: Settings) -> tuple[Finding, ...] | str:
    """Every enabled check's findings, or why the message could not be read. A check that
    defers the message (it could not run, or the sender is past their limit) ends the
    inspection: nothing else is decided until the message comes again."""
    block = mail.raw[: mail.header_end]
    problem = mime.header_problem(mail.headers, block)
    enabled = [(name, s) for name, s in settings.checks.items() if s.action is not Action.OFF]
    if problem is None and any(REGISTRY[name].READS_BODY for name, _ in enabled):
        problem = parts.structure_problem(mail.parts)
    if problem:
        return problem
    findings: list[Finding] = []
    loop, name = asyncio.get_running_loop(), ""
    try:
        # One timer for the whole inspection, moved on so each check has CHECK_TIMEOUT (less
        # a 60th): a timer made and cancelled per check cost more than most checks do.
        due = loop.time() + CHECK_TIMEOUT
        async with asyncio.timeout_at(due) as deadline:
            for name, check_settings in enabled:
                if loop.time() + CHECK_TIMEOUT - due > CHECK_TIMEOUT / 60:
                    due = loop.time() + CHECK_TIMEOUT
                    deadline.reschedule(due)
                found = await REGISTRY[name].inspect(mail, check_settings)
                if clause := settings.clauses.get(name):   # the trust's own, from its preset
                    found = [dataclasses.replace(f, clause=clause) for f in found]
                if deferring := next((f for f in found if f.action is Action.DEFER), None):
                    log.warning("check_deferred", check=name, id=mail.id, rule=deferring.rule_id)
                    return (deferring,)
                findings.extend(found)
    except Exception as e:  # a broken (or overrunning) check holds the mail, never passes it
        log.error("check_failed", check=name, id=mail.id, error=repr(e))
        return f"the {name} check failed ({type(e).__name__})"
    return tuple(findings)


def unreadable(problem: str, settings: Settings) -> Verdict:
    """Mail we cannot read is held (or, if configured, deferred), never passed unchecked."""
    action = Action.QUARANTINE if settings.server.unparseable == "quarantine" else Action.DEFER
    finding = Finding(check="mime", rule="unparseable", action=action, clause=UNPARSEABLE_CLAUSE,
                      message=problem, advice="ask IT to look at it in the quarantine")
    return Verdict(action, (finding,), "unparseable")


def signer(mail: Mail, settings: Settings) -> Sign | None:
    """The DKIM step, where keys are configured and the message has one From to sign for."""
    froms = mail.addresses("From")
    return Sign(froms[0][1]) if settings.dkim.keys and len(froms) == 1 else None


async def assess(mail: Mail, settings: Settings) -> Verdict:
    """The verdict for a message, from its findings or from why it could not be read."""
    inspected = await inspect(mail, settings)
    if isinstance(inspected, str):
        return unreadable(inspected, settings)
    return policy.decide(inspected, signer(mail, settings))


async def outgoing(mail: Mail, settings: Settings, secret: bytes,
                   plan: tuple[Step, ...], *, hop: bool = True) -> bytes:
    """The bytes to hand upstream: the plan carried out, a Message-ID if it had none, the DKIM
    signature, and our trace headers on top (Received only where mailguard is a `hop` of its
    own). CPU work leaves the event loop when large."""
    host = settings.server.hostname
    node = settings.server.node if settings.storage.shared else ""   # one of several

    def build() -> bytes:
        reuse = any(isinstance(s, AddDisclaimer) for s in plan)
        data = carry_out(mail.raw, plan, (mail.raw, mail.parts) if reuse else None)
        message_id = trace.missing_message_id(mail, host)
        if message_id:
            data = message_id + data
        sign = next((s for s in plan if isinstance(s, Sign)), None)
        signature = b""
        if sign is not None and settings.dkim.keys:
            from mailguard.delivery import dkim  # loaded only where keys are configured (OpenSSL, dkimpy)

            signature = dkim.sign(settings.dkim.keys, data, sign.address,
                                  settings.dkim.canonicalization)
        return b"".join((trace.headers_for(mail, host, secret, hop=hop, node=node), signature,
                         data))

    return build() if len(mail.raw) <= model.INLINE_LIMIT else await asyncio.to_thread(build)


def deferral_reply(finding: Finding) -> str:
    """The 4xx for a message put off: why, and that the sender's server will try again."""
    if finding.rule_id == "limits.rate":
        return smtp_reply(451, "4.7.1", [
            f"Not sent yet: {finding.message} (policy: {finding.clause}).",
            "Your mail server will try again later. If you need to write to this many "
            "people, ask the office to use the school's bulk mail; IT has been told."])
    unread = finding.rule_id == "mime.unparseable"
    what = ("mailguard could not read this message" if unread
            else "mailguard could not check this message just now")
    return smtp_reply(451, "4.6.0" if unread else "4.3.0", [
        f"{what}: {finding.message}.",
        "It was not sent; your mail server will retry. If this persists, ask IT."])


class Pipeline:
    def __init__(self, settings: Settings, events: EventLog, quarantine: Quarantine,
                 secret: bytes, upstream: Upstream, *, milter: bool = False) -> None:
        self.milter = milter   # inside the MTA's own hop: no Received of ours, no split copies
        self.settings = settings
        self.events = events
        self.quarantine = quarantine
        self.secret = secret
        self.upstream = upstream
        self.alerts: set[asyncio.Task[None]] = set()

    async def process(self, mail: Mail, txn: Transaction, refused: int = 0) -> Outcome:
        started = time.monotonic()
        stamped = trace.has_valid_stamp(mail, self.secret)
        verdict = (policy.decide((), signer(mail, self.settings)) if stamped
                   else await assess(mail, self.settings))
        if self.milter and verdict.split:   # one message in the MTA's queue: hide, as bcc does
            verdict = dataclasses.replace(verdict, plan=tuple(
                s for s in verdict.plan if not isinstance(s, SplitPerRecipient)))
        if (deferring := verdict.deferring) is not None:
            await txn.abort()   # "tempfail": the sender's server keeps the message and retries
            if deferring.rule_id == "limits.rate":
                self._tell_it(mail, deferring.message)
            return self._finish(mail, "tempfailed", deferral_reply(deferring), verdict,
                                started, refused, stamped)
        for f in verdict.findings:
            metrics.FINDINGS.labels(f.rule_id).inc()

        if verdict.action is Action.REJECT:
            await txn.abort()
            reply = smtp_reply(550, "5.7.1", policy.rejection_lines(verdict, mail.id))
            return self._finish(mail, "rejected", reply, verdict, started, refused, stamped)

        if verdict.action is Action.QUARANTINE:
            await txn.abort()
            try:
                await self.quarantine.hold(mail, verdict.findings, verdict.reason, verdict.plan)
            except Exception as e:  # disk full, permissions: the sender's server must retry
                log.error("quarantine_write_failed", id=mail.id, error=repr(e))
                reply = smtp_reply(451, "4.3.0", [
                    "mailguard could not store this message for review; please try again later."])
                return self._finish(mail, "tempfailed", reply, verdict, started, refused, stamped)
            await self._tell_reviewers(mail, verdict.findings)
            reply = smtp_reply(250, "2.0.0", [
                f"Held for review by the school's Data Protection Officer (reference {mail.id}):",
                f"{verdict.reason}. It will be delivered only if they release it."])
            return self._finish(mail, "quarantined", reply, verdict, started, refused, stamped,
                                quarantine_id=mail.id)

        if verdict.split:
            await txn.abort()
            outcome, reply, upstream = await self._split(mail, verdict)
            return self._finish(mail, outcome, reply, verdict, started, refused, stamped,
                                upstream=upstream)
        data = await outgoing(mail, self.settings, self.secret, verdict.plan,
                              hop=not self.milter)
        upstream = await txn.send(data)
        return self._finish(mail, *self._relayed(mail, upstream), verdict, started, refused,
                            stamped, upstream=upstream)

    async def _split(self, mail: Mail, verdict: Verdict) -> tuple[str, str, Reply]:
        """One copy per recipient, each addressed to them alone. A copy the upstream will not
        take now is held in quarantine, so the 250 still means nothing is lost."""
        plan = each_copy(verdict.plan)
        options = [o for o in mail.envelope.mail_options if o in ("BODY=8BITMIME", "SMTPUTF8")]
        delivered, held = 0, 0
        for n, rcpt in enumerate(mail.envelope.recipients, 1):
            copy = Mail(id=f"{mail.id}-{n}", envelope=Envelope(
                mail.envelope.sender, (rcpt,), mail.envelope.mail_options),
                client=mail.client, raw=recipients.only_to(mail.raw, rcpt))
            reply = await self._deliver_one(copy, options, plan)
            if reply.ok:
                delivered += 1
                continue
            try:
                await self.quarantine.hold(copy, verdict.findings,
                                           f"split copy not accepted upstream: {reply}", plan)
            except Exception as e:
                log.error("quarantine_write_failed", id=copy.id, error=repr(e))
                return "tempfailed", smtp_reply(451, "4.3.0", [
                    "mailguard could not deliver or store every copy; please try again later."
                ]), reply
            await self._tell_reviewers(copy, verdict.findings)
            held += 1
        summary = Reply(250, f"split: {delivered} delivered, {held} held")
        return "delivered", smtp_reply(250, "2.0.0", [
            f"Ok: {mail.id} sent as {delivered} separate copies"
            + (f"; {held} held for review" if held else "")]), summary

    async def _deliver_one(self, copy: Mail, options: list[str], plan: tuple[Step, ...]
                           ) -> Reply:
        txn = await self.upstream.begin(copy.envelope.sender, options)
        if isinstance(txn, Reply):
            return txn
        reply = await txn.add_recipient(copy.envelope.recipients[0], [])
        if not reply.ok:
            await txn.abort()
            return reply
        return await txn.send(await outgoing(copy, self.settings, self.secret, plan))

    @staticmethod
    def _relayed(mail: Mail, upstream: Reply) -> tuple[str, str]:
        if upstream.ok:
            return "delivered", smtp_reply(250, "2.0.0", [
                f"Ok: {mail.id} relayed (upstream: {upstream.text})"])
        if upstream.permanent:
            status, _, text = upstream.text.partition(" ")
            if not status[:1].isdigit():
                status, text = "5.0.0", upstream.text
            return "upstream_refused", smtp_reply(upstream.code, status, [
                f"The receiving mail server refused the message: {text}"])
        return "tempfailed", smtp_reply(451, "4.4.0", [
            f"The upstream mail server deferred the message ({upstream}); please try again later."])

    def _finish(self, mail: Mail, outcome: str, reply: str, verdict: Verdict, started: float,
                refused: int, stamped: bool, *, upstream: Reply | None = None,
                quarantine_id: str | None = None) -> Outcome:
        elapsed = time.monotonic() - started
        metrics.MESSAGES.labels(outcome).inc()
        metrics.PROCESSING.observe(elapsed)
        self.events.record(Event(
            id=mail.id, client=mail.client.ip, helo=mail.client.helo,
            auth_user=mail.client.auth_user, sender=mail.envelope.sender,
            rcpt_count=len(mail.envelope.recipients),
            rcpt_domains=mail.envelope.recipient_domains, refused_count=refused,
            size=len(mail.raw), verdict=outcome, checks=verdict.rule_ids,
            upstream=str(upstream)[:200] if upstream else "", latency_ms=round(elapsed * 1000, 2),
            quarantine_id=quarantine_id, tls=mail.client.tls, stamped=stamped,
            source=mail.client.source))
        if outcome == "delivered" and not stamped:
            self._remember(mail)
        alerting = [f for f in verdict.findings if f.alert or f.action is Action.NOTIFY]
        if alerting and outcome in notify.WHAT_HAPPENED:
            task = asyncio.create_task(self._alert(mail, alerting, outcome))
            self.alerts.add(task)
            task.add_done_callback(self.alerts.discard)
        return Outcome(reply, outcome)

    def _remember(self, mail: Mail) -> None:
        """Who the sender wrote to, for the misdirected check's history (keyed hashes)."""
        history = getattr(self.settings.checks.get("misdirected"), "history", None)
        if history is not None:
            history.saw(mail.envelope.sender, mail.envelope.recipients)

    async def _tell_reviewers(self, mail: Mail, findings: tuple[Finding, ...]) -> None:
        """Queue the hold's notices (DPO, safeguarding lead, sender); the mail is already
        safe on disk, so a failure here is logged and the sender still gets 250."""
        try:
            await outbox.enqueue(self.quarantine.db, self.settings, mail.id,
                                  mail.envelope.sender, findings)
        except Exception as e:
            log.error("notice_queue_failed", id=mail.id, error=repr(e))

    def _tell_it(self, mail: Mail, what: str) -> None:
        """One notice to IT (the postmaster) per sender per hour: a burst past the limit is
        how a compromised account looks, and IT must hear of it while it happens."""
        sender = mail.envelope.sender.lower()
        rates = getattr(self.settings.checks.get("limits"), "rates", None)
        if rates is None:
            return
        notice = notify.rate_limit_notice(self.settings, sender, what, mail.id)

        async def send() -> None:
            try:
                if not await rates.first_notice(sender, time.time()):
                    return   # told already this hour, perhaps by another worker or node
                reply = await notify.send(self.settings, self.settings.organisation.postmaster,
                                          notice)
                log.warning("rate_limit_notice", sender=sender, id=mail.id, reply=str(reply)[:200])
            except Exception as e:   # the mail itself is safe with the sender's server
                log.error("rate_limit_notice_failed", sender=sender, error=repr(e))
        task = asyncio.ensure_future(send())
        self.alerts.add(task)
        task.add_done_callback(self.alerts.discard)

    async def _alert(self, mail: Mail, findings: list[Finding], outcome: str) -> None:
        """Tell the safeguarding lead, after the sender has had their answer. A delivered
        message is copied into the quarantine first, so the lead can read what was sent."""
        try:
            if outcome == "delivered":
                await self.quarantine.hold(mail, tuple(findings), "copy for the safeguarding lead")
                await self.quarantine.update(mail.id, status="released",
                                             note="delivered; copy kept for the safeguarding lead")
            reply = await notify.send(self.settings, self.settings.organisation.safeguarding_lead,
                                      notify.safeguarding_alert(self.settings, mail, findings,
                                                                outcome, mail.id))
            metrics.ALERTS.labels("sent" if reply.ok else "failed").inc()
            log.info("safeguarding_alert", id=mail.id, rules=[f.rule_id for f in findings],
                     outcome=outcome, reply=str(reply)[:200])
        except Exception as e:  # the message itself is safe; the alert must be chased by IT
            metrics.ALERTS.labels("failed").inc()
            log.error("safeguarding_alert_failed", id=mail.id, error=repr(e))
