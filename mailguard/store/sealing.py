"""Held mail encrypted at rest: AES-256-GCM with a key that is never in the database.

The key comes from an environment variable named in the config (for systemd credentials or
a secrets manager) or from a key file, made (0600) on first use. A sealed file starts with
MAGIC and the key's id, so a missing or wrong key is named as such, and messages held before
encryption was turned on are still read as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"MGQ1"
TEXT = "sealed:"


class SealError(Exception):
    """Sealed content that cannot be opened with the key this instance has."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"mailguard quarantine key id" + key).digest()[:8]


class Sealer:
    """Seals and opens held content; `label` (the message id) binds a sealed blob to its
    record, so one message's file cannot be swapped in for another's. It seals with `key`
    and opens with it or any of `previous` (a key being rotated out)."""

    def __init__(self, key: bytes, previous: tuple[bytes, ...] = ()) -> None:
        if len(key) != 32 or any(len(k) != 32 for k in previous):
            raise ValueError("the quarantine key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)
        self._keys = {key_id(k): AESGCM(k) for k in previous} | {self.key_id: self._aead}

    def current(self, blob: bytes) -> bool:
        """True when `blob` is sealed under the key this instance seals with."""
        return blob.startswith(MAGIC) and blob[4:12] == self.key_id

    def reseal(self, blob: bytes, label: str) -> bytes:
        """The same content, sealed under the current key (plain content is sealed too)."""
        return self.seal(self.open(blob, label), label)

    def current_text(self, value: str | None) -> bool:
        if not value or not value.startswith(TEXT):
            return not value
        return self.current(base64.b64decode(value[len(TEXT):])[:12])

    def reseal_text(self, value: str, label: str) -> str:
        blob = (base64.b64decode(value[len(TEXT):]) if value.startswith(TEXT)
                else value.encode())
        return TEXT + base64.b64encode(self.reseal(blob, label)).decode()

    def seal(self, data: bytes, label: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return MAGIC + self.key_id + nonce + self._aead.encrypt(nonce, data, MAGIC + label.encode())

    def open(self, blob: bytes, label: str) -> bytes:
        if not blob.startswith(MAGIC):
            return blob   # held before encryption was turned on
        kid, nonce, body = blob[4:12], blob[12:24], blob[24:]
        aead = self._keys.get(kid)
        if aead is None:
            raise SealError(f"sealed with another key (id {kid.hex()}; this instance has "
                            f"{self.key_id.hex()}): restore the quarantine key it was held under, "
                            "or list it in quarantine_old_key_files")
        try:
            return aead.decrypt(nonce, body, MAGIC + label.encode())
        except InvalidTag:
            raise SealError("the sealed content has been altered or belongs to another "
                            "message") from None

    def seal_text(self, text: str, label: str) -> str:
        return TEXT + base64.b64encode(self.seal(text.encode(), label)).decode()

    def open_text(self, value: str | None, label: str) -> str | None:
        if not value or not value.startswith(TEXT):
            return value
        try:
            return self.open(base64.b64decode(value[len(TEXT):]), label).decode()
        except (SealError, binascii.Error, UnicodeDecodeError):
            return "(sealed with another key)"


def parse_key(text: str) -> bytes:
    """A key as written in the file or variable: 32 bytes in base64."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise ValueError("is not base64") from None
    if len(key) != 32:
        raise ValueError(f"holds {len(key)} bytes; a quarantine key is 32 bytes in base64 "
                         "(make one with: head -c 32 /dev/urandom | base64)")
    return key


def key_file(path: Path) -> bytes:
    """The key in `path`, made on first use (0600): held mail is never written in clear."""
    try:
        return parse_key(path.read_text())
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:   # another worker made it first
            return parse_key(path.read_text())
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        return parse_key(path.read_text())
