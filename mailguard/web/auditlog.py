"""The audit log for the auditor and the DPO: who looked at or did what, when, from where;
filtered, paged, and exported as CSV (the export is itself audited)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import urllib.parse

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailguard.store import audit
from mailguard.web.context import Desk, parse_day

PAGE = 100


def _filters(request: Request) -> dict[str, object]:
    q = request.query_params
    return {"actor": q.get("actor", "")[:200].strip(), "action": q.get("action", "")[:50].strip(),
            "quarantine_id": q.get("qid", "")[:64].strip(),
            "since": parse_day(q.get("since", ""), "since"),
            "until": parse_day(q.get("until", ""), "until", end=True)}


def _csv_safe(value: object) -> str:
    """A cell as text that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def routes(desk: Desk) -> list[Route]:
    async def listing(request: Request) -> Response:
        who = await desk.require(request, "audit")
        page = request.query_params.get("page", "1")
        if not page.isdigit() or int(page) < 1:
            raise HTTPException(400, "page: a page number from 1")
        db, _ = await desk.store()
        rows, total = await audit.search(db, **_filters(request),  # type: ignore[arg-type]
                                         limit=PAGE, offset=(int(page) - 1) * PAGE)
        kept = {k: v for k, v in request.query_params.items() if k != "page" and v}
        return desk.page(request, "audit.html", who, rows=rows, total=total, page=int(page),
                         pages=max(1, -(-total // PAGE)), q=request.query_params,
                         query=urllib.parse.urlencode(kept))

    async def export(request: Request) -> Response:
        who = await desk.require(request, "audit")
        db, _ = await desk.store()
        filters = _filters(request)
        rows, total = await audit.search(db, **filters, limit=None)  # type: ignore[arg-type]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["when (UTC)", "who", "from", "action", "message", "detail"])
        for r in rows:
            writer.writerow([_csv_safe(x) for x in (
                dt.datetime.fromtimestamp(r["ts"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                r["actor"], r["address"], r["action"], r["quarantine_id"], r["detail"])])
        shown = {k: v for k, v in filters.items() if v}
        await desk.audit(request, who, "export-audit", None, f"{total} rows; filters {shown}")
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
            "content-disposition": 'attachment; filename="mailguard-audit.csv"'})

    return [Route("/audit", listing), Route("/audit.csv", export)]
