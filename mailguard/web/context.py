"""What every review desk page shares: the stores, the signed-in reviewer, the role check,
the templates, and the audit row each view of content leaves."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from mailguard.config import Settings
from mailguard.delivery import trace
from mailguard.store import audit, reviewers
from mailguard.store.backend import Store
from mailguard.store.opening import open_store
from mailguard.store.quarantine import Held, Quarantine
from mailguard.store.reviewers import Reviewer
from mailguard.web import access
from mailguard.web.security import Throttle, csrf_token

TEMPLATES = Path(__file__).parent / "templates"
MAX_SESSION_HOURS = 12   # signed out this long after signing in, however busy


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M")


def _size(n: int | None) -> str:
    n = n or 0
    for unit in ("bytes", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@dataclass
class Desk:
    """The review desk's shared state. `settings` is a callable so a reload (SIGHUP) is seen."""

    settings: Callable[[], Settings]
    db: Store | None = None
    throttle: Throttle = field(default_factory=Throttle)
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=str(TEMPLATES)))
    _secret: bytes | None = None
    _quarantine: Quarantine | None = None

    def __post_init__(self) -> None:
        self.templates.env.filters["when"] = _when
        self.templates.env.filters["size"] = _size
        self.templates.env.globals["may"] = access.may

    async def store(self) -> tuple[Store, Quarantine]:
        if self.db is None:   # standing alone (tests, or a desk without a gateway)
            self.db = await open_store(self.settings().storage)
        if self._quarantine is None:   # data folder and key apply on restart, as in serve
            storage = self.settings().storage
            self._quarantine = Quarantine(self.db, storage.data_dir, storage.quarantine_key,
                                          storage.quarantine_old_keys)
        return self.db, self._quarantine

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = trace.load_secret(self.settings().server.stamp_secret_file)
        return self._secret

    async def reviewer(self, request: Request) -> Reviewer | None:
        """The signed-in reviewer, if the session is current: same password generation,
        account enabled, and within the session's absolute lifetime."""
        name = request.session.get("user")
        if not name:
            return None
        db, _ = await self.store()
        who = await reviewers.get(db, name)
        started = float(request.session.get("since", 0))
        if (who is None or who.disabled or who.generation != request.session.get("gen")
                or time.time() - started > MAX_SESSION_HOURS * 3600):
            request.session.clear()
            return None
        return who

    async def require(self, request: Request, page: str | None = None) -> Reviewer:
        """The reviewer, who must be signed in (else to the sign-in page) and, for `page`,
        have a role that may see it (else 403 in plain words)."""
        who = await self.reviewer(request)
        if who is None:
            raise HTTPException(303, headers={"location": "/login?next=" + request.url.path})
        if page and not access.may(who.role, page):
            raise HTTPException(403, f"Your role ({who.role}) does not include this page.")
        return who

    async def held(self, request: Request, who: Reviewer, qid: str) -> Held:
        """A held message this reviewer may open: 404 if there is none, 403 if not theirs."""
        _, quarantine = await self.store()
        found = await quarantine.get(qid)
        if found is None:
            raise HTTPException(404, f"There is no held message with the reference {qid}.")
        if not access.may_open(who, found):
            raise HTTPException(403, "This message is not one your role may open; the DPO can "
                                     "assign it to you.")
        return found

    async def audit(self, request: Request, who: Reviewer, action: str, qid: str | None,
                    detail: str = "") -> None:
        db, _ = await self.store()
        await audit.record(db, who.name, action, qid, detail, address(request))

    def page(self, request: Request, template: str, who: Reviewer | None, **values: Any
             ) -> Response:
        session = "session" in request.scope   # not there for the outermost error handler
        flash = request.session.pop("flash", None) if session else None
        return self.templates.TemplateResponse(request, template, {
            "who": who, "csrf": csrf_token(request) if session else "", "flash": flash,
            "organisation": self.settings().organisation.name, **values})


def address(request: Request) -> str:
    return request.client.host if request.client else ""


def flash(request: Request, text: str) -> None:
    request.session["flash"] = text


def back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def parse_day(text: str, field_name: str, *, end: bool = False) -> float | None:
    """A date from a filter form (YYYY-MM-DD, local time) as a timestamp: its start, or with
    `end` the start of the next day, so "to 24 November" includes that day; 400 if malformed."""
    if not text:
        return None
    try:
        day = dt.datetime.strptime(text, "%Y-%m-%d") + dt.timedelta(days=end)
        return day.astimezone().timestamp()
    except ValueError:
        raise HTTPException(400, f"{field_name}: give a date as YYYY-MM-DD, e.g. 2026-11-24"
                            ) from None
