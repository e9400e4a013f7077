"""The review desk's accounts: a name, a role and an argon2 password hash, with an optional
TOTP second factor. `generation` goes up when the password changes, which ends every session
signed in with the old one.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailguard.store.backend import Queries

ROLES = {
    "dpo": "Data Protection Officer: every message and action",
    "dsl": "designated safeguarding lead: safeguarding messages and those assigned to them",
    "it": "IT: statistics, wordlist terms and the event log; no message content",
    "auditor": "auditor: the audit log, read-only",
}
MIN_PASSWORD = 12
_HASHER = PasswordHasher()   # argon2id, the library's current recommended parameters


@functools.cache
def _dummy() -> str:
    """A hash to check unknown names against, so they take as long as known ones."""
    return _HASHER.hash("not a password of anyone's")


def _matches(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def _hash(password: str) -> str:
    """Hashing takes ~50 ms of CPU and 64 MB: off the event loop that carries the mail."""
    return await asyncio.to_thread(_HASHER.hash, password)


class AccountError(Exception):
    """A request about accounts that cannot be met, worded for the person making it."""


@dataclass(frozen=True)
class Reviewer:
    name: str
    role: str
    totp: str | None
    generation: int
    disabled: bool


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must be at least {MIN_PASSWORD} characters")


def _row(row: Any) -> Reviewer:
    return Reviewer(row["name"], row["role"], row["totp"], row["generation"],
                    bool(row["disabled"]))


async def get(db: Queries, name: str) -> Reviewer | None:
    row = await db.one("SELECT * FROM reviewers WHERE name = ?", (name,))
    return _row(row) if row else None


async def all_of(db: Queries) -> list[Reviewer]:
    return [_row(r) for r in await db.all("SELECT * FROM reviewers ORDER BY name")]


async def add(db: Queries, name: str, role: str, password: str) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if not name or not name.replace(".", "").replace("-", "").replace("_", "").replace(
            "@", "").isalnum():
        raise AccountError(f"{name!r}: use letters, digits, '.', '-', '_' or '@' in names")
    _check_password(password)
    if await get(db, name):
        raise AccountError(f"{name} already has an account; use `users passwd {name}`")
    await db.run("INSERT INTO reviewers (name, role, hash, created) VALUES (?, ?, ?, ?)",
                 (name, role, await _hash(password), time.time()))


async def set_password(db: Queries, name: str, password: str) -> None:
    _check_password(password)
    changed = await db.run(
        "UPDATE reviewers SET hash = ?, generation = generation + 1 WHERE name = ?",
        (await _hash(password), name))
    if changed == 0:
        raise AccountError(f"no account named {name}")


async def update(db: Queries, name: str, **values: object) -> None:
    """Change role, totp or disabled; any change ends the account's sessions."""
    allowed = {"role", "totp", "disabled"}
    assert set(values) <= allowed
    if "role" in values and values["role"] not in ROLES:
        raise AccountError(f"unknown role {values['role']!r}; roles: {', '.join(ROLES)}")
    sets = ", ".join(f"{k} = ?" for k in values)
    changed = await db.run(
        f"UPDATE reviewers SET {sets}, generation = generation + 1 WHERE name = ?",
        (*values.values(), name))
    if changed == 0:
        raise AccountError(f"no account named {name}")


async def verify(db: Queries, name: str, password: str) -> Reviewer | None:
    """The account if the password is right and the account enabled; None otherwise, in the
    same time whether or not the name exists."""
    row = await db.one("SELECT * FROM reviewers WHERE name = ?", (name,))
    stored = row["hash"] if row else _dummy()
    if not await asyncio.to_thread(_matches, stored, password):
        return None
    if row is None or row["disabled"]:
        return None
    if _HASHER.check_needs_rehash(stored):
        await db.run("UPDATE reviewers SET hash = ? WHERE name = ?",
                     (await _hash(password), name))
    return _row(row)
