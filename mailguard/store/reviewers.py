"""The review desk's accounts: a name, a role and an argon2 password hash, with an optional
TOTP second factor. `generation` goes up when the password changes, which ends every session
signed in with the old one.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass

import aiosqlite
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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


def _row(row: aiosqlite.Row) -> Reviewer:
    return Reviewer(row["name"], row["role"], row["totp"], row["generation"],
                    bool(row["disabled"]))


async def get(db: aiosqlite.Connection, name: str) -> Reviewer | None:
    async with db.execute("SELECT * FROM reviewers WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    return _row(row) if row else None


async def all_of(db: aiosqlite.Connection) -> list[Reviewer]:
    async with db.execute("SELECT * FROM reviewers ORDER BY name") as cur:
        return [_row(r) for r in await cur.fetchall()]


async def add(db: aiosqlite.Connection, name: str, role: str, password: str) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if not name or not name.replace(".", "").replace("-", "").replace("_", "").replace(
            "@", "").isalnum():
        raise AccountError(f"{name!r}: use letters, digits, '.', '-', '_' or '@' in names")
    _check_password(password)
    if await get(db, name):
        raise AccountError(f"{name} already has an account; use `users passwd {name}`")
    await db.execute("INSERT INTO reviewers (name, role, hash, created) VALUES (?, ?, ?, ?)",
                     (name, role, await _hash(password), time.time()))
    await db.commit()


async def set_password(db: aiosqlite.Connection, name: str, password: str) -> None:
    _check_password(password)
    cur = await db.execute(
        "UPDATE reviewers SET hash = ?, generation = generation + 1 WHERE name = ?",
        (await _hash(password), name))
    await db.commit()
    if cur.rowcount == 0:
        raise AccountError(f"no account named {name}")


async def update(db: aiosqlite.Connection, name: str, **values: object) -> None:
    """Change role, totp or disabled; any change ends the account's sessions."""
    allowed = {"role", "totp", "disabled"}
    assert set(values) <= allowed
    if "role" in values and values["role"] not in ROLES:
        raise AccountError(f"unknown role {values['role']!r}; roles: {', '.join(ROLES)}")
    sets = ", ".join(f"{k} = ?" for k in values)
    cur = await db.execute(
        f"UPDATE reviewers SET {sets}, generation = generation + 1 WHERE name = ?",
        (*values.values(), name))
    await db.commit()
    if cur.rowcount == 0:
        raise AccountError(f"no account named {name}")


async def verify(db: aiosqlite.Connection, name: str, password: str) -> Reviewer | None:
    """The account if the password is right and the account enabled; None otherwise, in the
    same time whether or not the name exists."""
    async with db.execute("SELECT * FROM reviewers WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    stored = row["hash"] if row else _dummy()
    if not await asyncio.to_thread(_matches, stored, password):
        return None
    if row is None or row["disabled"]:
        return None
    if _HASHER.check_needs_rehash(stored):
        await db.execute("UPDATE reviewers SET hash = ? WHERE name = ?",
                         (await _hash(password), name))
        await db.commit()
    return _row(row)
