"""The queue of held mail: filters, search, paging, counts per check, and bulk actions."""

from __future__ import annotations

import time
import urllib.parse

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailguard import review
from mailguard.checks.registry import REGISTRY
from mailguard.store import queue
from mailguard.store.quarantine import STATUSES
from mailguard.web import access
from mailguard.web.context import Desk, address, back, flash, parse_day
from mailguard.web.security import checked_form

BULK = ("release", "reject", "delete")


def filters_from(request: Request) -> queue.Filters:
    q = request.query_params
    status = q.get("status", "held")
    if status not in (*STATUSES, "all"):
        raise HTTPException(400, f"status: one of {', '.join(STATUSES)} or all")
    check = q.get("check", "")
    if check and check not in REGISTRY and check not in ("mime", "mailguard"):
        raise HTTPException(400, f"check: no check is called {check!r}")
    page = q.get("page", "1")
    if not page.isdigit() or not 1 <= int(page) <= 100_000:
        raise HTTPException(400, "page: a page number from 1")
    return queue.Filters(status=status, check=check, sender=q.get("sender", "")[:200].strip(),
                         since=parse_day(q.get("since", ""), "since"),
                         until=parse_day(q.get("until", ""), "until", end=True),
                         search=q.get("q", "")[:200].strip(), page=int(page))


def routes(desk: Desk) -> list[Route]:
    async def listing(request: Request) -> Response:
        who = await desk.require(request, "queue")
        f = filters_from(request)
        db, quarantine = await desk.store()
        scope = access.queue_scope(who)
        started = time.perf_counter()
        items, total = await queue.page(quarantine, f, scope, access.sees_subjects(who.role))
        counts = await queue.counts(db, f.status, scope)
        took = (time.perf_counter() - started) * 1000
        kept = {k: v for k, v in request.query_params.items() if k != "page" and v}
        pages = max(1, -(-total // queue.PAGE))
        return desk.page(request, "queue.html", who, items=items, total=total, f=f,
                         counts=counts, checks=sorted(REGISTRY), statuses=STATUSES,
                         pages=pages, query=urllib.parse.urlencode(kept), took=took,
                         subjects=access.sees_subjects(who.role), now=time.time(),
                         retention=desk.settings().storage.quarantine_retention_days,
                         may_act=who.role in ("dpo", "dsl"))

    async def bulk(request: Request) -> Response:
        who = await desk.require(request, "queue")
        form = await checked_form(request)
        action = str(form.get("action", ""))
        ids = [str(i) for i in form.getlist("id")][:500]
        if action not in BULK:
            raise HTTPException(400, f"action: one of {', '.join(BULK)}")
        if not ids:
            flash(request, "Nothing was selected.")
            return back(str(form.get("back", "/queue")))
        db, quarantine = await desk.store()
        done, problems = 0, []
        for qid in ids:
            try:
                await desk.held(request, who, qid)   # each one must be the reviewer's to act on
                if action == "release":
                    result = await review.release(desk.settings(), quarantine, db, qid, who.name,
                                                  desk.secret, address=address(request))
                    if result.refused:
                        said = "; ".join(f"{r}: {reply}" for r, reply in result.refused.items())
                        problems.append(f"{qid}: {len(result.refused)} recipient(s) still held "
                                        f"({said})")
                        continue
                elif action == "reject":
                    await review.reject(desk.settings(), quarantine, db, qid, who.name,
                                        str(form.get("note", ""))[:2000], address(request))
                else:
                    await review.delete(quarantine, db, qid, who.name, address(request))
                done += 1
            except (review.ReviewError, HTTPException) as e:
                problems.append(f"{qid}: {getattr(e, 'detail', None) or e}")
        word = {"release": "released", "reject": "rejected", "delete": "deleted"}[action]
        flash(request, f"{done} {word}." + (" Not done: " + "; ".join(problems) if problems
                                             else ""))
        target = str(form.get("back", "/queue"))
        return back(target if target.startswith("/queue") else "/queue")

    return [Route("/queue", listing), Route("/queue/bulk", bulk, methods=["POST"])]
