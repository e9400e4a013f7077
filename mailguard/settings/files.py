"""Reading secrets at build time: a key file only its owner may read, or `key: problem`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mailguard.settings.schema import KeyProblem

T = TypeVar("T")


def private(key: str, path: Path, read: Callable[[Path], T], verb: str = "read") -> T:
    """`read(path)`, where the file must not be readable by other users."""
    try:
        value = read(path)
        if path.stat().st_mode & 0o077:
            raise KeyProblem(key, f"{path} can be read by other users: chmod 600 {path}")
    except ValueError as e:
        if isinstance(e, KeyProblem):
            raise
        raise KeyProblem(key, f"{path} {e}") from None
    except OSError as e:
        raise KeyProblem(key, f"{path}: cannot {verb} it: {e}") from None
    return value
