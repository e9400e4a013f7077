"""One held message: what held it, the message itself made safe to read, its attachments,
and what the reviewer does with it. Every view of content and every action is audited."""

from __future__ import annotations

import asyncio
import html as htmllib
import urllib.parse
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mailguard import review
from mailguard.mime.views import views
from mailguard.store import audit, reviewers
from mailguard.store.quarantine import Held
from mailguard.store.reviewers import Reviewer
from mailguard.store.sealing import SealError
from mailguard.web import access, render
from mailguard.web.context import Desk, address, back, flash
from mailguard.web.security import checked_form

# The body frame's own policy: nothing runs, nothing is fetched but what the reviewer allowed.
FRAME_POLICY = ("sandbox{popups}; default-src 'none'; style-src 'unsafe-inline'; "
                "img-src data:{remote}; frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
FRAME_PAGE = ('<!doctype html><html><head><meta charset="utf-8"><base target="_blank">'
              '<style>body{{font:14px/1.45 system-ui,sans-serif;margin:12px;color:#111}}'
              'pre{{white-space:pre-wrap;word-wrap:break-word;font:13px/1.45 ui-monospace,'
              'monospace}}</style></head><body>{content}</body></html>')


@dataclass(frozen=True)
class Opened:
    """A held message a reviewer may open, with its bytes."""

    who: Reviewer
    held: Held
    raw: bytes


def routes(desk: Desk) -> list[Route]:
    async def content(request: Request, qid: str) -> Opened:
        who = await desk.require(request)
        held = await desk.held(request, who, qid)
        _, quarantine = await desk.store()
        try:
            raw = await quarantine.read(held)
        except SealError as e:
            raise HTTPException(409, f"The held copy of {qid} cannot be opened: {e}.") from None
        if raw is None:
            raise HTTPException(410, f"The content of {qid} was removed by retention.")
        return Opened(who, held, raw)

    async def show(request: Request) -> Response:
        qid = request.path_params["qid"]
        o = await content(request, qid)
        who, held, raw = o.who, o.held, o.raw
        settings = desk.settings()
        files = await asyncio.to_thread(render.attachments, raw, settings.inspection)
        shown = await asyncio.to_thread(render.body, raw)   # how much is held back, to say so
        language = settings.checks.get("language")
        words: list[tuple[str, str, str, str]] = []
        if language is not None and getattr(language, "lexicon", None) is not None:
            text = views(held.mail(raw)).own
            words = await asyncio.to_thread(render.in_context, text, language.lexicon)
        db, quarantine = await desk.store()
        await desk.audit(request, who, "view", qid)
        names = [r.name for r in await reviewers.all_of(db) if r.role in ("dpo", "dsl")] \
            if access.may(who.role, "assign") else []
        return desk.page(
            request, "message.html", who, held=held, headers=render.headers(raw), files=files,
            words=words, comments=await quarantine.comments(qid), reviewers=names,
            trail=await audit.trail(db, qid) if who.role == "dpo" else [],
            expires=held.ts + settings.storage.quarantine_retention_days * 86400,
            frame=f"/message/{qid}/body?" + urllib.parse.urlencode(
                {k: v for k, v in request.query_params.items() if k in ("remote", "links", "view")}),
            held_back=(shown.remote, shown.links),
            remote=request.query_params.get("remote") == "1",
            links=request.query_params.get("links") == "1",
            view=request.query_params.get("view", "html"))

    async def body(request: Request) -> Response:
        qid = request.path_params["qid"]
        o = await content(request, qid)
        who, raw = o.who, o.raw
        q = request.query_params
        remote, links = q.get("remote") == "1", q.get("links") == "1"
        shown = await asyncio.to_thread(render.body, raw, prefer=q.get("view", "html"),
                                        remote=remote, links=links)
        inner = (shown.content if shown.kind == "html"
                 else f"<pre>{htmllib.escape(shown.content)}</pre>")
        notes = [n for n in (shown.note, "only the first 2 MB is shown" if shown.cut else "") if n]
        if notes:
            inner = f"<p><em>{'; '.join(notes)}</em></p>" + inner
        await desk.audit(request, who, "view-body", qid,
                         ", ".join(w for w, on in (("remote images", remote), ("links", links))
                                   if on))
        policy = FRAME_POLICY.format(popups=" allow-popups allow-popups-to-escape-sandbox"
                                     if links else "", remote=" https: http:" if remote else "")
        return HTMLResponse(FRAME_PAGE.format(content=inner), headers={
            "content-security-policy": policy, "x-frame-options": "SAMEORIGIN"})

    async def attachment(request: Request) -> Response:
        qid, index = request.path_params["qid"], request.path_params["index"]
        o = await content(request, qid)
        who, raw = o.who, o.raw
        found = render.attachment_bytes(raw, index)
        if found is None:
            raise HTTPException(404, f"{qid} has no attachment number {index}.")
        name, data = found
        await desk.audit(request, who, "download", qid, name)
        quoted = urllib.parse.quote(name)
        return Response(data, media_type="application/octet-stream", headers={
            "content-disposition": f"attachment; filename*=UTF-8''{quoted}",
            "content-security-policy": "sandbox; default-src 'none'"})

    async def original(request: Request) -> Response:
        qid = request.path_params["qid"]
        o = await content(request, qid)
        who, raw = o.who, o.raw
        await desk.audit(request, who, "download", qid, "the whole message (.eml)")
        return Response(raw, media_type="application/octet-stream", headers={
            "content-disposition": f'attachment; filename="{qid}.eml"',
            "content-security-policy": "sandbox; default-src 'none'"})

    async def act(request: Request) -> Response:
        qid, action = request.path_params["qid"], request.path_params["action"]
        who = await desk.require(request)
        form = await checked_form(request)
        held = await desk.held(request, who, qid)
        db, quarantine = await desk.store()
        settings, here = desk.settings(), f"/message/{qid}"
        try:
            if action == "release":
                chosen = [str(r) for r in form.getlist("recipient")]
                result = await review.release(settings, quarantine, db, qid, who.name, desk.secret,
                                              only=chosen or None, address=address(request))
                if result.refused:
                    said = "; ".join(f"{r}: {reply}" for r, reply in result.refused.items())
                    flash(request, f"Delivered to {len(result.delivered)}; still held for "
                                   f"{len(result.refused)}. The mail server said: {said}")
                else:
                    flash(request, f"Released: delivered to {', '.join(result.delivered)}.")
            elif action == "reject":
                note = str(form.get("note", "")).strip()[:2000]
                reply = await review.reject(settings, quarantine, db, qid, who.name, note,
                                            address(request))
                flash(request, "Rejected" + (f"; the sender was told ({reply})" if reply
                                             else "; there was no sender to tell") + ".")
            elif action == "delete":
                await review.delete(quarantine, db, qid, who.name, address(request))
                flash(request, f"{qid} deleted.")
                return back("/queue")
            elif action == "assign":
                if not access.may(who.role, "assign"):
                    raise HTTPException(403, "Only the DPO assigns messages.")
                to = str(form.get("to", "")).strip()
                target = await reviewers.get(db, to) if to else None
                if to and (target is None or target.role not in ("dpo", "dsl")):
                    raise HTTPException(400, f"to: {to!r} is not a DPO or safeguarding lead "
                                             "account")
                await quarantine.assign(qid, to or None)
                await desk.audit(request, who, "assign", qid, f"to {to or 'nobody'}")
                flash(request, f"Assigned to {to}." if to else "No longer assigned.")
            elif action == "comment":
                text = str(form.get("text", "")).strip()
                if not text or len(text) > 4000:
                    raise HTTPException(400, "text: write a comment of up to 4,000 characters")
                await quarantine.comment(qid, who.name, text)
                await desk.audit(request, who, "comment", qid)
                flash(request, "Comment added.")
            elif action == "false-positive":
                rule = str(form.get("rule", ""))
                if rule not in {f["rule"] for f in held.findings}:
                    raise HTTPException(400, "rule: choose one of the rules that fired")
                await quarantine.false_positive(qid, rule, who.name)
                await desk.audit(request, who, "false-positive", qid, rule)
                flash(request, f"Recorded: {rule} misfired here. IT sees it in the term "
                               "statistics.")
            else:
                raise HTTPException(404, f"There is no action called {action!r}.")
        except review.ReviewError as e:
            flash(request, f"Not done: {e}.")
        return back(here)

    return [Route("/message/{qid:str}", show),
            Route("/message/{qid:str}/body", body),
            Route("/message/{qid:str}/attachment/{index:int}", attachment),
            Route("/message/{qid:str}/original", original),
            Route("/message/{qid:str}/{action:str}", act, methods=["POST"])]
