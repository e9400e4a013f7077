"""The milter face: the same pipeline as the relay, inside the school's own Postfix or Sendmail.

libmilter (Sendmail's own, through pymilter) speaks the protocol, one thread per MTA
connection. At end-of-message the thread hands the `Mail` to the gateway's event loop, where
`Pipeline.process` judges it exactly as for the relay; the pipeline's "upstream" is the MTA's
own queue (`Handoff`), and the verdict goes back as the milter's reply: accept with the plan
applied as header and body edits, reject with the clause-citing text, discard once the
quarantine holds the message (never before), tempfail when it cannot be checked. Whatever
goes wrong here is a tempfail, and the MTA's `milter_default_action = tempfail` covers
mailguard not answering at all. No policy lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import Milter
import structlog

from mailguard.config import Settings
from mailguard.delivery.relay import Reply, Upstream
from mailguard.model import Client, Envelope, Mail
from mailguard.pipeline import Outcome, Pipeline
from mailguard.rewrite.edits import Edits, edits
from mailguard.server.smtp import new_id

log = structlog.get_logger("mailguard.milter")

# Only what the policy's plans need: add and change header fields, replace the body. The
# envelope is never touched (as in relay mode, every recipient still gets the message).
ACTIONS = Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY
WAIT = 600.0   # seconds an end-of-message waits for the verdict (Postfix gives up at 300)
_DONE = object()


class Handoff:
    """The pipeline's upstream in milter mode: the MTA's queue. `send` passes the bytes to the
    milter thread, which asks the MTA for the edits and says whether it took them, so the
    event says "delivered" only when the MTA has the message as the plan made it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.requests: queue.Queue[Any] = queue.Queue()

    async def add_recipient(self, address: str, options: list[str]) -> Reply:
        return Reply(250, "2.1.5 the MTA has it")

    async def send(self, message: bytes) -> Reply:
        answer: asyncio.Future[Reply] = self.loop.create_future()
        self.requests.put((message, answer))
        return await answer

    async def abort(self) -> None:
        """Nothing to undo: the MTA holds the message until the milter replies."""


@dataclass
class Listener:
    """libmilter's listening socket and its thread, as the gateway's `server`."""

    socket: str
    timeout: int
    thread: threading.Thread | None = None

    async def start_serving(self) -> None:
        Milter.set_flags(ACTIONS)
        Milter.factory = _Session
        self.thread = threading.Thread(target=self._run, name="libmilter", daemon=True)
        self.thread.start()
        await self._bound()

    def _run(self) -> None:
        try:
            Milter.runmilter("mailguard", self.socket, self.timeout, rmsock=True)
        except Milter.milter.error as e:
            log.error("milter_stopped", error=str(e))

    async def _bound(self) -> None:
        """Wait until the MTA can connect."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.thread is not None
            if not self.thread.is_alive():
                raise OSError(f"libmilter could not listen on {self.socket}")
            if self._ready():
                return
            await asyncio.sleep(0.02)
        raise OSError(f"libmilter did not listen on {self.socket} within 10 s")

    def _ready(self) -> bool:
        """Whether the socket answers. A UNIX socket is made group-writable (the MTA's user is
        in mailguard's group), as libmilter leaves it to the umask."""
        kind, _, where = self.socket.partition(":")
        if kind == "unix":
            path = Path(where)
            if path.exists():
                path.chmod(0o660)
                return True
            return False
        port, _, host = where.partition("@")
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
        except OSError:
            return False
        return True

    def close(self) -> None:
        """No new MTA connections; messages in flight still get their verdict. libmilter
        notices the stop at its next poll (seconds), so the loop does not wait for it."""
        threading.Thread(target=Milter.milter.stop, name="libmilter-stop", daemon=True).start()


class MilterFront:
    """What the gateway's `Instance` drives for milter mode, as it drives the SMTP `Handler`:
    the settings in force, the pipeline, the connections, and drain state."""

    def __init__(self, settings: Settings, pipeline: Pipeline, upstream: Upstream) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.upstream = upstream   # where releases and notices go (the MTA itself, usually)
        self.users = None
        self.connections: set[_Session] = set()
        self.busy = 0
        self.closing = False
        self.loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self.listener = Listener(settings.milter.socket, settings.milter.timeout)
        _FRONT[:] = [self]

    def refresh_tls(self) -> None:
        """The MTA holds the TLS sessions; nothing of ours to renew."""

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def idle(self) -> bool:
        return not self.busy

    def hang_up(self) -> None:
        """libmilter's sessions close with the process; the MTA tempfails what comes next."""

    async def judge(self, mail: Mail, handoff: Handoff) -> Outcome:
        self.busy += 1
        try:
            return await self.pipeline.process(mail, handoff)
        finally:
            self.busy -= 1
            handoff.requests.put(_DONE)


_FRONT: list[MilterFront] = []   # libmilter makes the sessions; they find the gateway here


def _reply_lines(reply: str) -> tuple[str, str, list[str]]:
    """An SMTP reply of ours as setreply wants it: code, enhanced status, lines of text."""
    lines = reply.split("\r\n")
    code, status = lines[0][:3], lines[0][4:].partition(" ")[0]
    text = [line[4:].partition(" ")[2].replace("%", " percent") for line in lines]
    return code, status, text[:32]


@Milter.header_leading_space
class _Session(Milter.Base):
    """One MTA connection: its client, then one message after another."""

    def __init__(self) -> None:
        self.front = _FRONT[0]
        self.client = Client(ip="", helo="")
        self._reset()

    def _reset(self) -> None:
        self.sender = ""
        self.options: tuple[str, ...] = ()
        self.recipients: list[str] = []
        self.head: list[bytes] = []
        self.chunks: list[bytes] = []   # not `self.body`: that is libmilter's callback
        self.auth_user: str | None = None

    @Milter.noreply
    def connect(self, hostname: str, family: int, hostaddr: Any) -> int:
        self.front.connections.add(self)
        ip = hostaddr[0] if isinstance(hostaddr, tuple) else "127.0.0.1"
        self.client = Client(ip=ip, helo="")
        return Milter.CONTINUE

    @Milter.noreply
    def hello(self, hostname: str) -> int:
        tls = bool(self.getsymval("{tls_version}"))
        self.client = Client(ip=self.client.ip, helo=hostname, tls=tls, esmtp=True)
        return Milter.CONTINUE

    @Milter.noreply
    @Milter.decode("bytes")
    def envfrom(self, sender: bytes, *params: bytes) -> int:
        self._reset()
        self.sender = sender.decode("utf-8", "surrogateescape").strip("<>")
        self.options = tuple(p.decode("utf-8", "surrogateescape").upper() for p in params)
        self.auth_user = self.getsymval("{auth_authen}") or None
        return Milter.CONTINUE

    @Milter.noreply
    @Milter.decode("bytes")
    def envrcpt(self, recipient: bytes, *params: bytes) -> int:
        self.recipients.append(recipient.decode("utf-8", "surrogateescape").strip("<>"))
        return Milter.CONTINUE

    @Milter.noreply
    @Milter.decode("bytes")
    def header(self, name: bytes | str, value: bytes) -> int:
        field = name.encode() if isinstance(name, str) else name
        self.head.append(field + b":" + value.replace(b"\n", b"\r\n") + b"\r\n")
        return Milter.CONTINUE

    @Milter.noreply
    def body(self, chunk: bytes) -> int:
        self.chunks.append(chunk)
        return Milter.CONTINUE

    def eom(self) -> int:
        raw = b"".join(self.head) + b"\r\n" + b"".join(self.chunks)
        client = Client(ip=self.client.ip, helo=self.client.helo, auth_user=self.auth_user,
                        tls=self.client.tls, smtputf8="SMTPUTF8" in self.options,
                        esmtp=self.client.esmtp, source="milter")
        mail = Mail(id=new_id(), envelope=Envelope(self.sender, tuple(self.recipients),
                                                   self.options), client=client, raw=raw)
        queue_id = self.getsymval("i") or ""
        try:
            return self._verdict(mail, queue_id)
        except Exception as e:   # never a crash, never a pass: the MTA keeps it and retries
            log.error("milter_failed", id=mail.id, queue_id=queue_id, error=repr(e))
            return self._refuse("451-4.3.0 mailguard hit an internal error; please try "
                                "again later", Milter.TEMPFAIL)
        finally:
            self._reset()

    def _verdict(self, mail: Mail, queue_id: str) -> int:
        front = self.front
        if front.closing:
            return self._refuse("451 4.3.2 mailguard is shutting down, try again shortly",
                                Milter.TEMPFAIL)
        handoff = Handoff(front.loop)
        future = asyncio.run_coroutine_threadsafe(front.judge(mail, handoff), front.loop)
        deadline = time.monotonic() + WAIT
        while True:   # answer the pipeline's handoff, if it comes, until it is done
            item = handoff.requests.get(timeout=max(0.0, deadline - time.monotonic()))
            if item is _DONE:
                break
            data, answer = item
            reply = self._apply(mail, data, queue_id)
            front.loop.call_soon_threadsafe(answer.set_result, reply)
        outcome = future.result(timeout=1)
        if outcome.verdict == "delivered":
            return Milter.ACCEPT
        if outcome.verdict == "quarantined":
            return Milter.DISCARD   # held durably first; now the MTA drops its copy
        return self._refuse(outcome.reply, Milter.REJECT if outcome.reply.startswith("5")
                            else Milter.TEMPFAIL)

    def _apply(self, mail: Mail, data: bytes, queue_id: str) -> Reply:
        """Ask the MTA for the edits that make its copy the plan's; a refusal is a 451."""
        change: Edits = edits(mail.raw, data)
        try:
            for name, value in reversed(change.top):
                self.addheader(name, value, 0)
            for name, nth, value in change.change:
                self.chgheader(name, nth, value)
            for name, value in change.append:
                self.addheader(name, value)
            if change.body is not None:
                self.replacebody(change.body)
        except (Milter.milter.error, UnicodeEncodeError, ValueError) as e:
            log.error("milter_edit_refused", id=mail.id, queue_id=queue_id, error=repr(e))
            return Reply(451, "4.3.0 the MTA refused mailguard's changes to the message")
        return Reply(250, f"2.0.0 back in the MTA's queue{' as ' + queue_id if queue_id else ''}")

    def _refuse(self, reply: str, action: int) -> int:
        code, status, lines = _reply_lines(reply)
        try:
            self.setreply(code, status, *lines)
        except (Milter.milter.error, ValueError):   # too long for libmilter: the first line
            with contextlib.suppress(Milter.milter.error, ValueError):
                self.setreply(code, status, lines[0][:400])
        return action

    def abort(self) -> int:
        self._reset()
        return Milter.CONTINUE

    def close(self) -> int:
        self.front.connections.discard(self)
        return Milter.CONTINUE
