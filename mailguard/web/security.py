"""What keeps the review desk's pages to the people allowed them: the session key, CSRF
tokens on every form, sign-in throttling, and the headers every page is sent with.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import deque

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailguard.config import StorageSettings

# No script at all, styles only from the desk itself, frames only from the desk (the message
# body frame, which has its own, stricter policy).
PAGE_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; "
               "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
    b"cross-origin-opener-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=()",
}
MAX_FORM = 64 * 1024   # the desk's forms are small; anything bigger is not ours


def session_key(storage: StorageSettings) -> str:
    """The key that signs session cookies: made once, kept in the data folder (0600). Where
    several nodes share a store, every node's desk must accept the others' cookies: the key
    is then derived from the quarantine key they already share (an HMAC under it)."""
    if storage.shared and storage.quarantine_key:
        return hmac.new(storage.quarantine_key, b"mailguard desk sessions",
                        hashlib.sha256).hexdigest()
    data_dir = storage.data_dir
    path = data_dir / "web-session.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class SecurityHeaders:
    """Adds the page policy and the other headers to every response that has not set its
    own Content-Security-Policy (the body frame does)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", PAGE_POLICY.encode()))
                    headers.append((b"x-frame-options", b"DENY"))
                headers.extend((k, v) for k, v in HEADERS.items() if k not in names)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def csrf_token(request: Request) -> str:
    """The session's token for its forms, made at sign-in (or first use)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token matches the session's; 403 otherwise."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_FORM:
        raise HTTPException(413, "That form is too large.")
    form = await request.form(max_files=0, max_fields=2000)
    sent = str(form.get("csrf", ""))
    expected = str(request.session.get("csrf", ""))
    if not expected or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "This form has expired or did not come from the review desk. "
                                 "Go back, reload the page and try again.")
    return form


class Throttle:
    """Failed sign-ins per network address and per account name: past `limit` in `window`
    seconds, further tries are refused until the oldest failure ages out."""

    def __init__(self, limit: int = 5, window: float = 900) -> None:
        self.limit, self.window = limit, window
        self.failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self.failures.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def wait(self, keys: list[str], now: float | None = None) -> int:
        """Seconds until another try is allowed (0: go ahead)."""
        now = time.time() if now is None else now
        waits = [int(q[0] + self.window - now) + 1 for k in keys
                 if len(q := self._recent(k, now)) >= self.limit]
        return max(waits, default=0)

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.time() if now is None else now
        for k in keys:
            self._recent(k, now).append(now)
        if len(self.failures) > 10_000:   # a spray of names must not grow without bound
            for k in [k for k, q in self.failures.items() if not q]:
                del self.failures[k]

    def succeeded(self, keys: list[str]) -> None:
        for k in keys[1:]:   # the account's count; the address keeps its record
            self.failures.pop(k, None)
