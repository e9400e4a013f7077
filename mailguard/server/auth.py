"""SMTP AUTH users: a flat file of `user:scrypt$...` lines (make them with `mailguard passwd`).

Verifying scrypt costs ~50 ms, and Microsoft 365 connectors sign in on every connection, so a
successful check is remembered as an HMAC of the password under a per-process key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from mailguard.config import ConfigError

N, R, P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _check(stored: str, password: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(base64.b64decode(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


class UserDatabase:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}

    @classmethod
    def load(cls, path: Path) -> UserDatabase:
        users: dict[str, str] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, stored = line.partition(":")
            if not sep or not stored.startswith("scrypt$"):
                raise ConfigError(f"{path}: line {number}: expected user:scrypt$... "
                                  "(make one with `mailguard passwd USER`)")
            users[user.strip().lower()] = stored.strip()
        return cls(users)

    def verify(self, user: str, password: str) -> bool:
        user = user.strip().lower()
        stored = self.users.get(user)
        if stored is None:
            return False
        tag = hmac.new(self._key, f"{user}\0{password}\0{stored}".encode(), "sha256").digest()
        remembered = self._verified.get(user)
        if remembered is not None and hmac.compare_digest(remembered, tag):
            return True
        if _check(stored, password):
            self._verified[user] = tag
            return True
        return False
