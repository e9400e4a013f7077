"""The SMTP face: aiosmtpd with relay control, limits, STARTTLS/AUTH, PROXY, and RCPT forwarded
to the upstream in real time so no recipient is ever silently dropped. No policy lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import sqlite3
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailguard import metrics, mime
from mailguard.config import Settings
from mailguard.delivery.relay import Reply, Transaction, Upstream
from mailguard.model import Client, Mail
from mailguard.model import Envelope as MailEnvelope
from mailguard.pipeline import Pipeline, smtp_reply
from mailguard.server.auth import UserDatabase
from mailguard.sources import CLOUD, Source, proof
from mailguard.store import audit
from mailguard.store.attempts import Attempts
from mailguard.store.events import Event, EventLog

log = structlog.get_logger("mailguard.smtp")

FORWARDED_MAIL_OPTIONS = ("BODY=8BITMIME", "SMTPUTF8")


def new_id() -> str:
    return uuid.uuid4().hex[:16].upper()


class GatewaySession(Session):
    """aiosmtpd's session plus the upstream transaction that mirrors this client's."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.txn: Transaction | None = None
        self.refused = 0
        self.mail_id = ""
        self.source: Source | None = None   # how this client proved it is ours, at MAIL


class GatewaySMTP(SMTP):
    """aiosmtpd's protocol with a bulk DATA reader and a connection limit.

    aiosmtpd reads DATA one line at a time in Python (~1,300 awaits for 100 KB); this reads up
    to each ".\\r\\n" with one C-level search, then undoes dot-stuffing with one replace.
    """

    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.gateway = handler
        self.counted = False

    def _create_session(self) -> Session:
        return GatewaySession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self.gateway.connections.add(self)
            self.counted = True
            metrics.CONNECTIONS.inc()
            if (len(self.gateway.connections) > self.gateway.settings.server.max_connections
                    or self.gateway.closing):
                transport.write(b"421 4.7.0 Too many connections to mailguard, try again later\r\n")
                transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if self.counted:
            self.counted = False
            self.gateway.connections.discard(self)
            metrics.CONNECTIONS.dec()
            session = self.session
            if isinstance(session, GatewaySession) and session.txn is not None:
                txn, session.txn = session.txn, None
                self.gateway.background(txn.abort())
        super().connection_lost(error)

    async def _read_data(self, limit: int) -> bytes | str:
        """The message after dot-unstuffing, or an error reply once the terminator is read."""
        reader = self._reader
        reader._limit = limit + 1024  # type: ignore[attr-defined]
        pieces: list[bytes] = []
        size = 0
        too_big = False
        line_start = True  # the DATA stream starts at the beginning of a line
        try:
            while True:
                try:
                    piece = await reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError as e:
                    skipped = await reader.readexactly(e.consumed)
                    line_start = skipped.endswith(b"\r\n")
                    too_big = True
                    pieces.clear()
                    continue
                before = piece[:-3]
                # Only CRLF "." CRLF ends DATA; a bare LF before the dot never does (smuggling).
                if before.endswith(b"\r\n") or (not before and line_start):
                    if not too_big:
                        pieces.append(before)
                    break
                line_start = True
                size += len(piece)
                if size > limit:
                    too_big = True
                    pieces.clear()
                if not too_big:
                    pieces.append(piece)
        finally:
            reader._limit = self.line_length_limit  # type: ignore[attr-defined]
        if too_big:
            return "552 5.3.4 Message too big for mailguard (server.max_message_size)"
        data = b"".join(pieces)
        if data.startswith(b"."):
            data = data[1:]
        return data.replace(b"\r\n.", b"\r\n")

    def _within_limits(self, data: bytes) -> bytes | str:
        server = self.gateway.settings.server
        if longest_line(data, server.max_line_length) > server.max_line_length + 2:
            return (f"500 5.5.6 A line is longer than {server.max_line_length} bytes "
                    "(server.max_line_length); the message was not sent")
        if mime.header_end(data, 0, min(len(data), server.max_header_size + 4)) > (
                server.max_header_size):
            return (f"552 5.3.4 The message header is larger than {server.max_header_size} bytes "
                    "(server.max_header_size); the message was not sent")
        return data

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        server = self.gateway.settings.server
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._reset_timeout(server.data_timeout)
        result = await self._read_data(server.max_message_size)
        if isinstance(result, bytes):
            result = self._within_limits(result)
        if isinstance(result, str):
            session = self.session
            if isinstance(session, GatewaySession) and session.txn is not None:
                txn, session.txn = session.txn, None
                await txn.abort()
            self.gateway.refused_data(self.session, self.envelope, result)
            self._set_post_data_state()
            await self.push(result)
            return
        self.envelope.content = self.envelope.original_content = result
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)


def longest_line(data: bytes, limit: int) -> int:
    """Length of the longest line; cheap for the common case of a message shorter than `limit`."""
    if len(data) <= limit:
        return 0
    return max(map(len, data.split(b"\n")))


def _in(ip: str, networks: tuple[Any, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


_ATTEMPTS: dict[tuple[Path, int, float], Attempts] = {}


def attempts_for(settings: Settings) -> Attempts:
    """The shared sign-in failures for this data folder and these limits (one per process)."""
    key = (settings.storage.data_dir / "attempts.db", settings.server.auth_max_failures,
           settings.server.auth_window)
    return _ATTEMPTS.setdefault(key, Attempts(*key))


def client_ip(session: Session) -> str:
    proxy = session.proxy_data
    if proxy is not None and getattr(proxy, "src_addr", None):
        return str(proxy.src_addr)
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer or "")


class Handler:
    """aiosmtpd hooks: who may send, mirror the envelope upstream, hand DATA to the pipeline."""

    def __init__(self, settings: Settings, pipeline: Pipeline, upstream: Upstream,
                 events: EventLog, users: UserDatabase | None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.upstream = upstream
        self.events = events
        self.users = users
        self.connections: set[GatewaySMTP] = set()
        self.tls: ssl.SSLContext | None = tls_context(settings)
        self.busy = 0
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def refresh_tls(self) -> None:
        """New connections get the certificate now on disk; a broken one keeps the old."""
        try:
            self.tls = tls_context(self.settings)
        except (ssl.SSLError, OSError) as e:
            log.error("tls_reload_failed_keeping_old", error=str(e))

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def idle(self) -> bool:
        """No message being judged and no client between MAIL and the end of DATA."""
        return not self.busy and not any(getattr(c.session, "txn", None) is not None
                                         for c in self.connections)

    def hang_up(self) -> None:
        """421 to every client still connected, and close."""
        for conn in list(self.connections):
            transport = conn.transport
            if transport is None or transport.is_closing():
                continue
            # A TLS session the client has already torn down fails the write in asyncio's
            # SSL transport: nothing to tell, and the events must still be saved.
            with contextlib.suppress(OSError, RuntimeError, AttributeError):
                transport.write(b"421 4.3.2 mailguard is shutting down, try again shortly\r\n")
            transport.close()

    def admit(self, session: Session) -> Source | None:
        """The source this client satisfies: by sign-in, client certificate or address."""
        tls = session.ssl or {}
        ssl_object = tls.get("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return self.settings.sources.admit(client_ip(session), session.authenticated, der,
                                           tls.get("peercert"))

    def unproven(self, session: GatewaySession, raw: bytes, sender: str) -> str | None:
        """For a cloud source: the 5xx reply when the message does not prove it is ours."""
        source = session.source
        if source is None or not source.cloud:
            return None
        refusal = source.refusal(raw[:mime.header_end(raw)], self.settings.organisation.name)
        if refusal is None:
            metrics.SOURCES.labels(source.name, "proven").inc()
            return None
        metrics.SOURCES.labels(source.name, "refused").inc()
        log.warning("source_refused", source=source.name, kind=source.kind,
                    reason=refusal.reason, claimed_tenant=refusal.claimed or None,
                    client=client_ip(session), mail_id=session.mail_id)
        return self._refuse(session, refusal.reason,
                            smtp_reply(550, "5.7.1", [refusal.words]), sender)

    def authenticator(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        """Sign-ins are throttled per address and per user, across every worker: past
        `auth_max_failures` in `auth_window`, 454 without even checking the password (an
        scrypt check costs 50 ms). Each failure, refusal and sign-in is audited."""
        if self.users is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace").strip().lower()[:200]
        ip, now = client_ip(session), time.time()
        keys = [f"addr:{ip}", f"user:{user}"]
        attempts = attempts_for(self.settings)
        try:
            wait = attempts.wait(keys, now)
        except sqlite3.Error as e:
            log.error("auth_count_unreadable", error=str(e))
            return AuthResult(success=False, handled=False, message=(
                "454 4.7.0 Sign-in is not possible just now; try again later"))
        if wait:
            metrics.REFUSED.labels("auth_throttled").inc()
            log.warning("auth_throttled", client=ip, user=user, wait_s=wait)
            self._audit(user, "smtp sign-in refused", f"too many failures; {wait} s left", ip)
            return AuthResult(success=False, handled=False, message=(
                f"454 4.7.0 Too many failed sign-ins from this address or for this account; "
                f"try again in {(wait + 59) // 60} minutes, or ask IT"))
        ok = self.users.verify(user, auth_data.password.decode("utf-8", "replace"))
        with contextlib.suppress(sqlite3.Error):   # the sign-in itself is already decided
            if ok:
                attempts.succeeded(keys)
            else:
                attempts.failed(keys, now)
        if not ok:
            metrics.REFUSED.labels("auth_failed").inc()
            log.warning("auth_failed", client=ip, user=user)
        self._audit(user, "smtp sign-in" if ok else "smtp sign-in failed", mechanism, ip)
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    def _audit(self, user: str, action: str, detail: str, ip: str) -> None:
        self.background(audit.record(self.pipeline.quarantine.db, user, action, None, detail,
                                     address=ip))

    def _refuse(self, session: Session, reason: str, reply: str, sender: str | None) -> str:
        metrics.REFUSED.labels(reason).inc()
        self.events.record(Event(id=new_id(), client=client_ip(session),
                                 helo=session.host_name or "", sender=sender, verdict=reason,
                                 auth_user=session.auth_data if session.authenticated else None,
                                 tls=session.ssl is not None,
                                 source=session.source.name if isinstance(
                                     session, GatewaySession) and session.source else ""))
        return reply

    def refused_data(self, session: Session | None, envelope: Envelope | None, reply: str) -> None:
        """An event for a message refused while reading DATA (too big, long lines)."""
        if session is None or envelope is None:
            return
        assert isinstance(session, GatewaySession)
        reason = {"552 5.3.4 Message too": "too_big", "500 5.5.6": "line_too_long",
                  "552 5.3.4 The message header": "header_too_big"}
        verdict = next((v for k, v in reason.items() if reply.startswith(k)), "refused")
        metrics.REFUSED.labels(verdict).inc()
        self.events.record(Event(
            id=session.mail_id or new_id(), client=client_ip(session),
            helo=session.host_name or "", sender=envelope.mail_from, verdict=verdict,
            rcpt_count=len(envelope.rcpt_tos),
            auth_user=session.auth_data if session.authenticated else None,
            rcpt_domains=tuple(sorted({r.rpartition("@")[2].lower() for r in envelope.rcpt_tos})),
            tls=session.ssl is not None))

    async def handle_PROXY(self, server: SMTP, session: Session, envelope: Envelope,
                           proxy_data: Any) -> bool:
        """Take the client address from a PROXY header only from our own load balancers."""
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        ok = bool(proxy_data and proxy_data.valid) and _in(peer, self.settings.server.proxy_from)
        if not ok:
            log.warning("proxy_header_refused", peer=peer)
        return ok

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        assert isinstance(session, GatewaySession)
        org = self.settings.organisation
        ip = client_ip(session)
        bounce = address == "<>"  # aiosmtpd keeps "<>" so its own state sees a MAIL was given
        if self.closing:
            return "421 4.3.2 mailguard is shutting down, try again shortly"
        source = session.source = self.admit(session)
        if source is None:
            return self._refuse(session, "relay_denied", smtp_reply(550, "5.7.1", [
                f"Relaying denied: {ip} is not one of {org.name}'s mail servers and has not "
                "signed in. Authenticate (AUTH over STARTTLS), or ask IT to add this server "
                "as a source in mailguard's config (docs/deploy/)."]), address)
        if source.cloud and session.ssl is None:
            return self._refuse(session, "cloud_without_tls", smtp_reply(530, "5.7.0", [
                f"Mail from {CLOUD[source.kind]} must come over TLS: issue STARTTLS first "
                "(IT: require TLS in the connector or routing rule)."]), address)
        if not bounce and not org.owns(address):
            return self._refuse(session, "foreign_sender", smtp_reply(550, "5.7.1", [
                f"Sender {address} is outside {org.name}'s domains ({', '.join(org.domains)}); "
                "mailguard only relays the organisation's own outbound mail."]), address)
        options = [o for o in mail_options if o in FORWARDED_MAIL_OPTIONS]
        begun = await self.upstream.begin("" if bounce else address, options)
        if isinstance(begun, Reply):
            return str(begun) if begun.permanent else f"451 {begun.text}"
        session.txn = begun
        session.refused = 0
        session.mail_id = new_id()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        assert isinstance(session, GatewaySession)
        if session.txn is None:
            return "451 4.4.1 The upstream connection was lost; please try again later"
        if len(envelope.rcpt_tos) >= self.settings.server.max_recipients:
            return (f"452 4.5.3 Too many recipients (server.max_recipients = "
                    f"{self.settings.server.max_recipients}); send the rest in another message")
        reply = await session.txn.add_recipient(address, [])
        if reply.ok:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            return f"{reply.code} {reply.text}"
        session.refused += 1
        if reply.code == 451 and "unavailable" in reply.text:
            session.txn = None
        return f"{reply.code} {reply.text}"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(session, GatewaySession)
        if session.txn is not None:
            txn, session.txn = session.txn, None
            await txn.abort()
        return "250 2.0.0 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(session, GatewaySession)
        txn, session.txn = session.txn, None
        if txn is None:
            return "451 4.4.1 The upstream connection was lost; please try again later"
        raw = envelope.original_content
        assert isinstance(raw, bytes)
        refused = self.unproven(session, raw, envelope.mail_from)
        if refused is not None:
            self.background(txn.abort())
            return refused
        if session.source is not None and session.source.secret_header:
            raw = proof.without(raw, mime.header_end(raw), session.source.secret_header)
        mail = Mail(
            id=session.mail_id or new_id(),
            envelope=MailEnvelope(sender="" if envelope.mail_from == "<>" else envelope.mail_from,
                                  recipients=tuple(envelope.rcpt_tos),
                                  mail_options=tuple(envelope.mail_options)),
            client=Client(ip=client_ip(session), helo=session.host_name or "",
                          auth_user=session.auth_data if session.authenticated else None,
                          tls=session.ssl is not None,
                          smtputf8="SMTPUTF8" in envelope.mail_options,
                          esmtp=session.extended_smtp,
                          source=session.source.name if session.source else ""),
            raw=raw)
        self.busy += 1
        try:
            outcome = await self.pipeline.process(mail, txn, session.refused)
        except BaseException:
            self.background(txn.abort())
            raise
        finally:
            self.busy -= 1
        return outcome.reply

    async def handle_exception(self, error: Exception) -> str:
        log.error("smtp_exception", error=repr(error))
        return "451 4.3.0 mailguard hit an internal error; please try again later"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    s = settings.server
    if s.tls_cert is None or s.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)   # with the system's CAs
    ctx.load_cert_chain(str(s.tls_cert), str(s.tls_key))
    cas = settings.sources.certificate_cas if settings.sources else ()
    if cas:   # a certificate source: ask for a client certificate, which must then verify
        ctx.verify_mode = ssl.CERT_OPTIONAL
        for ca in cas:
            if ca is not None:
                ctx.load_verify_locations(cafile=str(ca))
    return ctx


def protocol_factory(handler: Handler) -> Callable[[], GatewaySMTP]:
    """Each connection gets the settings in force when it opens (SIGHUP swaps them)."""

    def make() -> GatewaySMTP:
        s = handler.settings.server
        offers_auth = bool(handler.users) and handler.settings.sources.auth
        return GatewaySMTP(
            handler, data_size_limit=s.max_message_size, enable_SMTPUTF8=True,
            hostname=s.hostname, ident="mailguard ESMTP", tls_context=handler.tls,
            timeout=s.idle_timeout, auth_require_tls=True,
            authenticator=handler.authenticator if offers_auth else None,
            auth_exclude_mechanism=None if offers_auth else ["LOGIN", "PLAIN"],
            proxy_protocol_timeout=30 if s.proxy_protocol else None)

    return make
