"""Each attachment streamed to ClamAV's clamd (INSTREAM), when configured: infected mail is
refused; if clamd cannot be reached the message is deferred (4xx, the sender's server
retries) or, if IT chooses, delivered with a logged finding.

soke 'Systems Use and Data Security' and bourne 'Virus Protection': mail is monitored for
viruses. Off by default: not every school runs clamd.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from mailguard.files.report import attachment_parts, body_bytes, filename
from mailguard.model import Action, Finding, Mail, unavailable
from mailguard.settings.schema import CheckOptions, Chosen, KeyProblem, Number, Text
from mailguard.settings.shared import Shared

NAME = "antivirus"
READS_BODY = True
CLAUSE = "soke 'Systems Use and Data Security'; bourne 'Virus Protection'"
CHUNK = 256 * 1024


@dataclass(frozen=True)
class Settings:
    action: Action
    clamd: str            # a Unix socket path, or host:port
    unreachable: str      # "tempfail" or "deliver"
    timeout: float


class Options(CheckOptions):
    """`[checks.antivirus]`: attachments scanned by ClamAV."""

    action: Chosen | None = None
    """A virus found (default: reject when clamd is set, else off)."""
    clamd: Text = ""
    """clamd's Unix socket ("/run/clamav/clamd.ctl") or host:port."""
    timeout: Number = Field(30.0, ge=1)
    """Seconds per scan."""
    unreachable: Literal["tempfail", "deliver"] = "tempfail"
    """clamd down: defer the mail (451), or deliver it with the attachment noted unscanned."""

    @model_validator(mode="after")
    def _socket(self) -> Options:
        if self.action not in (None, Action.OFF) and not self.clamd:
            raise KeyProblem("clamd", 'set the clamd socket ("/run/clamav/clamd.ctl") or '
                             "host:port")
        return self


def build(o: Options, shared: Shared) -> Settings:
    action = o.action if o.action is not None else (Action.REJECT if o.clamd else Action.OFF)
    return Settings(action=action, clamd=o.clamd, timeout=o.timeout, unreachable=o.unreachable)


async def _connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if address.startswith("/"):
        return await asyncio.open_unix_connection(address)
    host, _, port = address.rpartition(":")
    return await asyncio.open_connection(host.strip("[]"), int(port))


async def scan(address: str, data: bytes, timeout: float) -> str:
    """clamd's verdict for the bytes: "OK", "<signature> FOUND", or "... ERROR"."""
    async with asyncio.timeout(timeout):
        reader, writer = await _connect(address)
        try:
            writer.write(b"zINSTREAM\0")
            for at in range(0, len(data), CHUNK):
                chunk = data[at:at + CHUNK]
                writer.write(struct.pack(">I", len(chunk)) + chunk)
                await writer.drain()
            writer.write(struct.pack(">I", 0))
            await writer.drain()
            reply = await reader.readuntil(b"\0")
        finally:
            writer.close()
    return reply.rstrip(b"\0").decode("utf-8", "replace").removeprefix("stream: ")


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    found: list[Finding] = []
    for index, part in enumerate(attachment_parts(mail.parts), 1):
        data = body_bytes(mail.raw, part)
        if not data:
            continue
        name = filename(part, index)
        try:
            verdict = await scan(settings.clamd, data, settings.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            problem = f"clamd at {settings.clamd} could not be reached ({type(e).__name__})"
            if settings.unreachable == "tempfail":
                return [unavailable(NAME, problem)]
            verdict = f"{problem} ERROR"
        if verdict.endswith(" FOUND"):
            found.append(Finding(
                check=NAME, rule="infected", action=settings.action, clause=CLAUSE,
                message=f"{name} contains a virus or malware ({verdict.removesuffix(' FOUND')})",
                advice="do not send it again; tell IT, who will check your computer",
                evidence=f"{name}: {verdict}"))
        elif verdict.endswith("ERROR"):
            found.append(Finding(
                check=NAME, rule="unscanned", action=Action.LOG, clause=CLAUSE, severity="low",
                message=f"{name} was not scanned for viruses: {verdict}",
                advice="nothing; IT will look at the virus scanner", evidence=f"{name}: {verdict}"))
    return found
