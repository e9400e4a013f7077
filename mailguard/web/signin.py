"""Signing in and out: password (argon2), then the second factor if the account has one;
failures throttled per address and per name; a fresh session (and CSRF token) on success."""

from __future__ import annotations

import secrets
import time
import urllib.parse

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailguard.store import reviewers
from mailguard.store.reviewers import Reviewer
from mailguard.web import access
from mailguard.web.context import Desk, address, back
from mailguard.web.security import checked_form


def _next(request: Request, fallback: str) -> str:
    """Where to go after signing in: only a path on the desk itself, never another site."""
    target = request.query_params.get("next", "")
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else fallback


def routes(desk: Desk) -> list[Route]:
    def start(request: Request, who: Reviewer) -> Response:
        request.session.clear()
        request.session.update({"user": who.name, "gen": who.generation, "since": time.time(),
                                "csrf": secrets.token_urlsafe(32)})
        return back(_next(request, access.HOME[who.role]))

    async def refuse(request: Request, keys: list[str], template: str, **values: object
                     ) -> Response:
        desk.throttle.failed(keys)
        response = desk.page(request, template, None, error="That did not match. Try again.",
                             **values)
        response.status_code = 401
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return desk.page(request, "login.html", None, next=request.query_params.get("next"))
        form = await checked_form(request)
        name = str(form.get("name", "")).strip()[:200]
        keys = [f"addr:{address(request)}", f"name:{name.lower()}"]
        wait = desk.throttle.wait(keys)
        if wait:
            response = desk.page(request, "login.html", None,
                                 error=f"Too many failed sign-ins. Try again in "
                                       f"{(wait + 59) // 60} minutes, or ask the DPO.")
            response.status_code = 429
            return response
        db, _ = await desk.store()
        who = await reviewers.verify(db, name, str(form.get("password", "")))
        if who is None:
            return await refuse(request, keys, "login.html")
        desk.throttle.succeeded(keys)
        if who.totp:
            request.session.clear()
            request.session.update({"pending": who.name, "pending_at": time.time(),
                                    "csrf": secrets.token_urlsafe(32)})
            target = _next(request, "")
            return back("/login/code" + (f"?next={urllib.parse.quote(target)}" if target else ""))
        await desk.audit(request, who, "sign-in", None)
        return start(request, who)

    async def code(request: Request) -> Response:
        import pyotp

        name = request.session.get("pending")
        if not name or time.time() - float(request.session.get("pending_at", 0)) > 300:
            request.session.clear()
            return back("/login")
        if request.method == "GET":
            return desk.page(request, "code.html", None)
        form = await checked_form(request)
        keys = [f"addr:{address(request)}", f"name:{str(name).lower()}"]
        if desk.throttle.wait(keys):
            request.session.clear()
            return back("/login")
        db, _ = await desk.store()
        who = await reviewers.get(db, str(name))
        sent = str(form.get("code", "")).replace(" ", "")
        if who is None or not who.totp or not pyotp.TOTP(who.totp).verify(sent, valid_window=1):
            return await refuse(request, keys, "code.html")
        await desk.audit(request, who, "sign-in", None, "with second factor")
        return start(request, who)

    async def logout(request: Request) -> Response:
        await checked_form(request)
        who = await desk.reviewer(request)
        if who:
            await desk.audit(request, who, "sign-out", None)
        request.session.clear()
        return back("/login")

    async def home(request: Request) -> Response:
        who = await desk.reviewer(request)
        return back(access.HOME[who.role] if who else "/login")

    return [Route("/", home), Route("/login", login, methods=["GET", "POST"]),
            Route("/login/code", code, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"])]
