"""The milter face: the same pipeline as the relay, inside the school's own Postfix or Sendmail.

Each MTA connection is an asyncio stream speaking the milter protocol (milterproto). At the
end of each message the `Mail` goes to `Pipeline.process`, exactly as for the relay; the
pipeline's "upstream" is the MTA's own queue (`Handoff`), and the verdict goes back as the
milter's reply: accept with the plan applied as header and body edits, reject with the
clause-citing text, discard once the quarantine holds the message (never before), tempfail
when it cannot be checked. Whatever goes wrong here is a tempfail or a dropped connection,
which the MTA's `milter_default_action = tempfail` turns into a retry. No policy lives here.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import structlog

from mailguard import metrics
from mailguard.config import Settings
from mailguard.delivery.relay import Reply, Upstream
from mailguard.model import Client, Envelope, Mail
from mailguard.pipeline import Outcome, Pipeline
from mailguard.rewrite.edits import edits
from mailguard.server import milterproto as mp
from mailguard.server.smtp import new_id

log = structlog.get_logger("mailguard.milter")


class Handoff:
    """The pipeline's upstream in milter mode: the MTA's queue. `send` works out the edits that
    make the MTA's copy the plan's; they go out with the verdict, in one write (the MTA
    applies none of them before it reads the accept, and drops them all if it never does)."""

    def __init__(self, session: Session, mail: Mail) -> None:
        self.session, self.mail = session, mail
        self.edits: list[bytes] = []

    async def add_recipient(self, address: str, options: list[str]) -> Reply:
        return Reply(250, "2.1.5 the MTA has it")

    async def send(self, message: bytes) -> Reply:
        if not self.session.connected():   # the MTA hung up: it keeps the mail and retries
            log.error("milter_edit_failed", id=self.mail.id, error="the MTA closed the connection")
            return Reply(451, "4.4.2 the MTA's connection was lost")
        self.edits = list(mp.edit_packets(edits(self.mail.raw, message)))
        queue_id = self.session.queue_id
        return Reply(250, "2.0.0 back in the MTA's queue" + (f" as {queue_id}" if queue_id else ""))

    async def abort(self) -> None:
        """Nothing to undo: the MTA holds the message until the milter replies."""


class Session(asyncio.Protocol):
    """One MTA connection: its client, then one message after another (`reset` at MAIL).

    Packets are read as they arrive, in `data_received`, with no coroutine or timer per packet
    (a message is a dozen packets, and per-packet awaits and timers were a third of the
    milter's own cost); only the end of a message starts a task, the pipeline's. Packets that
    come while a message is judged wait in the buffer, in order."""

    def __init__(self, front: MilterFront) -> None:
        self.front = front
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.judging: asyncio.Task[None] | None = None
        self.agreed: mp.Agreed | None = None
        self.ip, self.helo, self.tls = "", "", False
        self.heard = 0.0                           # when the MTA last sent anything
        self._quiet: asyncio.TimerHandle | None = None
        self._drained: asyncio.Future[None] | None = None   # set while the socket is full
        self.reset()

    def reset(self) -> None:
        self.sender = ""
        self.options: tuple[str, ...] = ()
        self.recipients: list[str] = []
        self.head: list[bytes] = []
        self.body: list[bytes] = []
        self.size = 0
        self.auth_user: str | None = None
        self.queue_id = ""

    # -- the connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.front.closing:
            transport.close()
            return
        self.front.connections.add(self)
        metrics.CONNECTIONS.inc()
        self.heard = self.loop.time()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.front.connections:
            self.front.connections.discard(self)
            metrics.CONNECTIONS.dec()
        if self._quiet is not None:
            self._quiet.cancel()
        self._wake(ConnectionResetError("the MTA closed the connection"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _watch(self) -> None:
        """One timer per connection, moved on only when it fires: a connection silent for
        `[milter] timeout` seconds (not judging a message) is closed."""
        timeout = self.front.settings.milter.timeout
        now = self.loop.time()
        if self.judging is None and now - self.heard >= timeout:
            log.info("milter_idle_closed", client=self.ip)
            self.close()
            return
        due = now + timeout if self.judging is not None else self.heard + timeout
        self._quiet = self.loop.call_at(due, self._watch)

    # -- writing, with the transport's flow control --------------------------------------

    def connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def write(self, *packets: bytes) -> None:
        if not self.connected():
            raise ConnectionResetError("the MTA closed the connection")
        self.transport.writelines(packets)   # type: ignore[union-attr]

    async def drain(self) -> None:
        """Until what was written has left for the socket (or the socket takes more)."""
        if not self.connected():
            raise ConnectionResetError("the MTA closed the connection")
        if self._drained is not None:
            await asyncio.shield(self._drained)

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        self._wake(None)

    def _wake(self, error: Exception | None) -> None:
        waiter, self._drained = self._drained, None
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
                waiter.exception()   # retrieved: nobody may be waiting

    # -- reading -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.heard = self.loop.time()
        self.buffer += data
        if self.judging is None:
            self._read()
        elif len(self.buffer) > mp.MAX_PACKET:   # the MTA waits for the verdict; this does not
            self.transport.pause_reading()        # type: ignore[union-attr]

    def _read(self) -> None:
        """Every whole packet in the buffer, until a message is to be judged."""
        buffer, at = self.buffer, 0
        try:
            while self.judging is None and len(buffer) - at >= 4:
                size = mp.length(buffer[at:at + 4])
                if len(buffer) - at - 4 < size:
                    break
                code, data = buffer[at + 4], bytes(buffer[at + 5:at + 4 + size])
                at += 4 + size
                if not self.command(code, data):
                    self.close()
                    break
        except mp.ProtocolError as e:   # not the protocol: drop it, never a reply
            log.error("milter_protocol_error", client=self.ip, error=str(e))
            buffer.clear()
            self.close()
            return
        del buffer[:at]

    def command(self, code: int, data: bytes) -> bool:
        """Act on one packet; False ends the connection."""
        if code == mp.OPTNEG:
            self.agreed = mp.negotiate(data)
            self.write(self.agreed.reply)
            return True
        if code == mp.MACRO:   # never answered: a stray reply would answer the next command
            self.macro(mp.macros(data))
            return True
        if code == mp.CONNECT:
            self.ip = mp.connect_address(data)
        elif code == mp.HELO:
            self.helo = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif code == mp.MAIL:
            self.reset()
            args = [a.decode("utf-8", "surrogateescape") for a in mp.strings(data)]
            self.sender = args[0].strip("<>") if args else ""
            self.options = tuple(a.upper() for a in args[1:])
        elif code == mp.RCPT:
            args = mp.strings(data)
            if args:
                self.recipients.append(args[0].decode("utf-8", "surrogateescape").strip("<>"))
        elif code == mp.HEADER:
            self.header(data)
        elif code == mp.BODY:
            self.chunk(data)
        elif code == mp.END:
            self.chunk(data)
            self.judging = self.loop.create_task(self.end())
            self.judging.add_done_callback(self._judged)
            return True
        elif code == mp.ABORT:
            self.reset()
            return True
        elif code == mp.QUIT:
            return False
        elif code == mp.QUIT_NC:   # the same connection, for the MTA's next client
            self.ip, self.helo, self.tls = "", "", False
            self.reset()
            return True
        elif code not in (mp.DATA, mp.EOH, mp.UNKNOWN):
            raise mp.ProtocolError(f"unknown command {bytes([code])!r}")
        if self.agreed is None:
            raise mp.ProtocolError("a command before option negotiation")
        if self.agreed.replies_to(code):   # CONNECT … BODY, unless agreed otherwise
            self.write(mp.packet(mp.CONTINUE))
        return True

    def macro(self, values: dict[bytes, bytes]) -> None:
        text = {k.decode("ascii", "replace"): v.decode("utf-8", "replace")
                for k, v in values.items()}
        if "{tls_version}" in text:
            self.tls = bool(text["{tls_version}"])
        if text.get("{auth_authen}"):
            self.auth_user = text["{auth_authen}"]
        if text.get("i"):
            self.queue_id = text["i"]

    def header(self, data: bytes) -> None:
        name, _, value = data.partition(b"\0")
        value = value.removesuffix(b"\0")
        field = name + b":" + value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"
        self.size += len(field)
        self.head.append(field)

    def chunk(self, data: bytes) -> None:
        self.size += len(data)
        if data and self.size <= self.front.settings.server.max_message_size:
            self.body.append(data)

    # -- the end of a message ------------------------------------------------------------

    async def end(self) -> None:
        """Judge the message and answer, in one write: for mail delivered, the edits the
        Handoff worked out, then the accept; otherwise the verdict alone."""
        limit = self.front.settings.server.max_message_size
        if self.size > limit:
            self.write(mp.reply_code(
                f"552 5.3.4 The message is larger than the {limit // 1048576} MB mailguard "
                "checks; send large files by the school's file sharing instead"))
            return
        mail = Mail(id=new_id(), envelope=Envelope(self.sender, tuple(self.recipients),
                                                   self.options),
                    client=Client(ip=self.ip, helo=self.helo, auth_user=self.auth_user,
                                  tls=self.tls, smtputf8="SMTPUTF8" in self.options,
                                  esmtp=True, source="milter"),
                    raw=b"".join(self.head) + b"\r\n" + b"".join(self.body))
        handoff = Handoff(self, mail)
        try:
            outcome = await self.front.judge(mail, handoff)
            answer = [*handoff.edits, self.answer(outcome)] if outcome.verdict == "delivered" \
                else [self.answer(outcome)]
        except Exception as e:   # never a crash, never a pass: the MTA keeps it and retries
            log.error("milter_failed", id=mail.id, queue_id=self.queue_id, error=repr(e))
            answer = [mp.reply_code("451 4.3.0 mailguard hit an internal error; please try "
                                    "again later")]
        self.write(*answer)
        await self.drain()   # a slow MTA holds this message's task, not the loop's memory

    def _judged(self, task: asyncio.Task[None]) -> None:
        """The verdict is written (or the MTA left): read on from where the message ended."""
        self.judging = None
        self.reset()
        if not task.cancelled() and isinstance(task.exception(), OSError | RuntimeError):
            self.close()   # the verdict could not be written: the MTA will retry
        if self.transport is not None and not self.transport.is_closing():
            self.heard = self.loop.time()
            self.transport.resume_reading()
            self._read()

    @staticmethod
    def answer(outcome: Outcome) -> bytes:
        if outcome.verdict == "delivered":
            return mp.packet(mp.ACCEPT)
        if outcome.verdict == "quarantined":
            return mp.packet(mp.DISCARD)   # held durably first; now the MTA drops its copy
        return mp.reply_code(outcome.reply)


class Listener:
    """The milter socket (TCP, or a UNIX socket given to the MTA's group), as `server`."""

    def __init__(self, front: MilterFront) -> None:
        self.front = front
        self.server: asyncio.Server | None = None

    async def start_serving(self) -> None:
        o = self.front.settings.milter
        loop = asyncio.get_running_loop()
        kind, _, where = o.socket.partition(":")
        if kind == "unix":
            _clear(Path(where), o.group)
            self.server = await loop.create_unix_server(self.front.session, where,
                                                        start_serving=False)
            _restrict(Path(where), o.group)
        else:
            port, _, host = where.partition("@")
            self.server = await loop.create_server(self.front.session, host, int(port),
                                                   start_serving=False, backlog=1024)
        await self.server.start_serving()

    def close(self) -> None:
        """No new MTA connections; messages in flight still get their verdict."""
        if self.server is not None:
            self.server.close()


def _clear(path: Path, group: str) -> None:
    """The socket's folder made (0750, the MTA's group may enter it, whatever the umask), and
    a socket left by a process that is gone removed."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        path.parent.chmod(0o750)
        if group:
            shutil.chown(path.parent, group=group)
    path.unlink(missing_ok=True)


def _restrict(path: Path, group: str) -> None:
    """Before anything is served: only the socket's group (the MTA's) may connect."""
    if group:
        shutil.chown(path, group=group)
    path.chmod(0o660)


class MilterFront:
    """What the gateway's `Instance` drives for milter mode, as it drives the SMTP `Handler`:
    the settings in force, the pipeline, the connections, and drain state."""

    def __init__(self, settings: Settings, pipeline: Pipeline, upstream: Upstream) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.upstream = upstream   # where releases and notices go (the MTA itself, usually)
        self.users = None
        self.connections: set[Session] = set()
        self.busy = 0
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.listener = Listener(self)

    def refresh_tls(self) -> None:
        """The MTA holds the TLS sessions; nothing of ours to renew."""

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def idle(self) -> bool:
        return not self.busy

    def hang_up(self) -> None:
        """Close every MTA connection; the MTA tempfails what comes next on them."""
        for session in list(self.connections):
            session.close()

    def session(self) -> Session:
        """A new MTA connection's protocol (it joins `connections` once connected)."""
        return Session(self)

    async def judge(self, mail: Mail, handoff: Handoff) -> Outcome:
        self.busy += 1
        try:
            return await self.pipeline.process(mail, handoff)
        finally:
            self.busy -= 1
