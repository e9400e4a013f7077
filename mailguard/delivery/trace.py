"""Headers mailguard puts on top of what it relays: Received, Message-ID, and its HMAC stamp.

The stamp lets a message that loops back (Microsoft 365 routes outbound mail through its own
transport after a smarthost) pass without being checked twice. It binds the Message-ID, From
and a timestamp with the instance secret, so it cannot be forged or moved to another message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from email.utils import formatdate
from pathlib import Path

from mailguard.model import Mail

STAMP_HEADER = b"X-Mailguard"
STAMP_MAX_AGE = 7 * 24 * 3600


def load_secret(path: Path) -> bytes:
    """The instance secret, created (0600) on first use; share the file between instances."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = base64.b64encode(secrets.token_bytes(32))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker made it first
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as f:
            f.write(value + b"\n")
        return value


def _mac(secret: bytes, stamped_at: int, message_id: str, sender: str) -> str:
    text = f"v1|{stamped_at}|{message_id.strip()}|{sender.strip().lower()}".encode(
        "utf-8", "surrogateescape")
    return base64.b64encode(hmac.new(secret, text, hashlib.sha256).digest()[:18]).decode()


def _from(mail: Mail) -> str:
    return str(mail.headers.get("From", ""))


def has_valid_stamp(mail: Mail, secret: bytes, now: float | None = None) -> bool:
    """True when a stamp of ours, fresh and matching this message's Message-ID and From, is on it."""
    if STAMP_HEADER.lower() not in mail.raw[: mail.header_end].lower():
        return False
    now = time.time() if now is None else now
    message_id = str(mail.headers.get("Message-ID", ""))
    for value in mail.headers.get_all("X-Mailguard", []):
        fields = dict(p.strip().partition("=")[::2] for p in str(value).split(";") if "=" in p)
        try:
            stamped_at = int(fields.get("t", ""))
        except ValueError:
            continue
        if fields.get("v") != "1" or not 0 <= now - stamped_at <= STAMP_MAX_AGE:
            continue
        if hmac.compare_digest(fields.get("s", ""), _mac(secret, stamped_at, message_id, _from(mail))):
            return True
    return False


def _protocol(mail: Mail) -> str:
    c = mail.client
    base = "UTF8SMTP" if c.smtputf8 else ("ESMTP" if c.esmtp else "SMTP")
    suffix = ("S" if c.tls else "") + ("A" if c.auth_user else "")
    return base + suffix if c.esmtp or c.smtputf8 else base


def _fold(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


def message_id(mail: Mail, hostname: str) -> str:
    """The message's Message-ID, or the one mailguard gives a message that has none."""
    return str(mail.headers.get("Message-ID", "")).strip() or f"<{mail.id}@{hostname}>"


def missing_message_id(mail: Mail, hostname: str) -> bytes:
    """A Message-ID field for a message without one (it goes inside what DKIM signs)."""
    if str(mail.headers.get("Message-ID", "")).strip():
        return b""
    return f"Message-ID: {message_id(mail, hostname)}\r\n".encode()


def headers_for(mail: Mail, hostname: str, secret: bytes, *, now: float | None = None,
                hop: bool = True, node: str = "") -> bytes:
    """The trace block to put on top of the message: the stamp and, where mailguard is a hop
    of its own (the relay, not the milter inside the MTA's hop), Received (naming the `node`
    where several gateways share a store)."""
    now = time.time() if now is None else now
    stamped_at = int(now)
    mac = _mac(secret, stamped_at, message_id(mail, hostname), _from(mail))
    stamp = f"X-Mailguard: v=1; i={mail.id}; t={stamped_at}; s={mac}\r\n"
    if not hop:
        return stamp.encode("utf-8", "surrogateescape")
    return (stamp +
            f"Received: from {_fold(mail.client.helo) or 'unknown'} ([{mail.client.ip}])\r\n"
            f"\tby {hostname} (mailguard{f' node {_fold(node)}' if node else ''}) with "
            f"{_protocol(mail)} id {mail.id}\r\n"
            f"\t(envelope-from <{_fold(mail.envelope.sender)}>);\r\n"
            f"\t{formatdate(now, localtime=True)}\r\n").encode("utf-8", "surrogateescape")
