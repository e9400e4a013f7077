"""Upstream delivery: an SMTP transaction opened at MAIL so each RCPT gets the upstream's answer.

SMTP upstreams use aiosmtplib over pooled, reused connections; `maildir:` writes files (fsync'd)
for a newcomer's first run with no mail server at all.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosmtplib
from aiosmtplib.protocol import normalize_message_line_endings

from mailguard.config import UpstreamSettings


@dataclass(frozen=True)
class Reply:
    """An SMTP reply as the upstream gave it (or as we describe a failure to reach it)."""

    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def unavailable(problem: str) -> Reply:
    return Reply(451, f"4.4.1 upstream mail server unavailable ({problem}); please try again later")


class Transaction(Protocol):
    """One upstream mail transaction, driven step by step from the client's commands."""

    async def add_recipient(self, address: str, options: list[str]) -> Reply: ...
    async def send(self, message: bytes) -> Reply: ...
    async def abort(self) -> None: ...


class Upstream(Protocol):
    async def begin(self, sender: str, options: list[str]) -> Transaction | Reply: ...
    async def close(self) -> None: ...
    def describe(self) -> str: ...


def wire_format(message: bytes) -> bytes:
    """The DATA payload: CRLF line endings, dot-stuffed, terminated — as aiosmtplib makes it.

    aiosmtplib does this with two regex passes (1.7 ms per 100 KB here, most of our CPU per
    message); counting and replacing bytes gives the same bytes in a tenth of the time.
    """
    crlf = message.count(b"\r\n")
    if message.count(b"\r") != crlf or message.count(b"\n") != crlf:
        message = normalize_message_line_endings(message)  # bare CR or LF: rare, let it fix
    elif not message.endswith(b"\r\n"):
        message += b"\r\n"
    message = message.replace(b"\r\n.", b"\r\n..")
    if message.startswith(b"."):
        message = b"." + message
    return message + b".\r\n"


def _reply_of(exc: aiosmtplib.SMTPResponseException) -> Reply:
    return Reply(exc.code, " ".join(exc.message.split()))


def _utf8(options: list[str]) -> bool:
    return "SMTPUTF8" in options


class SmtpTransaction:
    def __init__(self, pool: SmtpUpstream, conn: aiosmtplib.SMTP, utf8: bool) -> None:
        self.pool, self.conn, self.utf8 = pool, conn, utf8
        self.done = False

    async def add_recipient(self, address: str, options: list[str]) -> Reply:
        try:
            r = await self.conn.rcpt(address, options=options,
                                     encoding="utf-8" if self.utf8 else "ascii")
            return Reply(r.code, r.message)
        except aiosmtplib.SMTPResponseException as e:
            return _reply_of(e)
        except (aiosmtplib.SMTPException, OSError, UnicodeEncodeError) as e:
            self._discard()
            return unavailable(type(e).__name__)

    async def send(self, message: bytes) -> Reply:
        try:
            start = await self.conn.execute_command(b"DATA")
            if start.code != 354:
                self._finish()
                return Reply(start.code, " ".join(start.message.split()))
            protocol = self.conn.protocol
            assert protocol is not None
            protocol.write(wire_format(message))
            r = await protocol.read_response(timeout=self.pool.settings.timeout)
        except (aiosmtplib.SMTPException, OSError) as e:
            self._discard()
            return unavailable(type(e).__name__)
        self._finish()
        return Reply(r.code, " ".join(r.message.split()))

    async def abort(self) -> None:
        if self.done:
            return
        try:
            await self.conn.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._discard()
            return
        self._finish()

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self.pool.put_back(self.conn)

    def _discard(self) -> None:
        self.done = True
        self.conn.close()


class SmtpUpstream:
    """A pool of idle upstream connections; a broken one is dropped, never reused."""

    def __init__(self, settings: UpstreamSettings, local_hostname: str, max_idle: int = 64) -> None:
        self.settings = settings
        self.local_hostname = local_hostname
        self.idle: list[tuple[float, aiosmtplib.SMTP]] = []
        self.max_idle = max_idle
        self.idle_for = 30.0

    def describe(self) -> str:
        s = self.settings
        return f"{s.scheme}://{s.host}:{s.port}"

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.settings.ca_file) if
                                         self.settings.ca_file else None)
        if not self.settings.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.settings.tls_cert and self.settings.tls_key:
            ctx.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
        return ctx

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        tls = s.scheme in ("smtp+starttls", "smtps")
        conn = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, local_hostname=self.local_hostname,
            timeout=s.timeout, use_tls=s.scheme == "smtps",
            start_tls=s.scheme == "smtp+starttls",
            tls_context=self._tls_context() if tls else None,
            username=s.username, password=s.password)
        await conn.connect()
        return conn

    def put_back(self, conn: aiosmtplib.SMTP) -> None:
        if conn.is_connected and len(self.idle) < self.max_idle:
            self.idle.append((time.monotonic(), conn))
        else:
            conn.close()

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        now = time.monotonic()
        while self.idle:
            since, conn = self.idle.pop()
            if conn.is_connected and now - since < self.idle_for:
                return conn
            conn.close()
        return None

    async def begin(self, sender: str, options: list[str]) -> SmtpTransaction | Reply:
        enc = "utf-8" if _utf8(options) else "ascii"
        # A pooled connection may have been closed by the server while idle: retry once, fresh.
        pooled = self._take_idle()
        attempts = (pooled, None) if pooled is not None else (None,)
        problem = "the server closed the connection"
        for conn in attempts:
            try:
                if conn is None:
                    conn = await self._connect()
                await conn.mail(sender, options=options, encoding=enc)
                return SmtpTransaction(self, conn, _utf8(options))
            except aiosmtplib.SMTPResponseException as e:
                if e.code == 421:
                    conn.close()
                    continue
                self.put_back(conn)
                return _reply_of(e)
            except (aiosmtplib.SMTPException, OSError, UnicodeEncodeError) as e:
                if conn is not None:
                    conn.close()
                problem = type(e).__name__
        return unavailable(problem)

    async def close(self) -> None:
        for _, conn in self.idle:
            try:
                await asyncio.wait_for(conn.quit(), 2)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                conn.close()
        self.idle.clear()


class MaildirTransaction:
    def __init__(self, upstream: MaildirUpstream, sender: str) -> None:
        self.upstream, self.sender = upstream, sender
        self.recipients: list[str] = []

    async def add_recipient(self, address: str, options: list[str]) -> Reply:
        self.recipients.append(address)
        return Reply(250, "2.1.5 Ok")

    async def send(self, message: bytes) -> Reply:
        envelope = (f"Return-Path: <{self.sender}>\r\n"
                    f"X-Envelope-To: {', '.join(self.recipients)}\r\n").encode(
                        "utf-8", "surrogateescape")
        try:
            name = await asyncio.to_thread(self.upstream.write, envelope + message)
        except OSError as e:
            return Reply(451, f"4.3.0 could not write to the maildir ({e.strerror})")
        return Reply(250, f"2.0.0 Ok: delivered to maildir as {name}")

    async def abort(self) -> None:
        self.recipients.clear()


class MaildirUpstream:
    """Delivers into a Maildir (tmp → fsync → new), so `make run` works with no mail server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in ("tmp", "new", "cur"):
            (path / sub).mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return f"maildir:{self.path}"

    def write(self, data: bytes) -> str:
        name = f"{time.time():.6f}.{os.getpid()}_{uuid.uuid4().hex}.{socket.gethostname()}"
        tmp = self.path / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path / "new" / name)
        return name

    async def begin(self, sender: str, options: list[str]) -> MaildirTransaction:
        return MaildirTransaction(self, sender)

    async def close(self) -> None:
        return None


def open_upstream(settings: UpstreamSettings, local_hostname: str) -> Upstream:
    if settings.scheme == "maildir":
        assert settings.path is not None
        return MaildirUpstream(settings.path)
    return SmtpUpstream(settings, local_hostname)
