"""For IT (and the DPO): the dashboard, the wordlist terms with their hits and false
positives, and the event log. Numbers and envelope facts only: never a message's content."""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailguard.store import stats
from mailguard.store.events import EventLog
from mailguard.text import lexicon, rules
from mailguard.web import charts
from mailguard.web.context import Desk, parse_day
from mailguard.web.security import checked_form

PERIODS = (7, 30, 90, 365)
PAGE = 100


def _days(request: Request) -> int:
    days = request.query_params.get("days", "30")
    if not days.isdigit() or int(days) not in PERIODS:
        raise HTTPException(400, f"days: one of {', '.join(map(str, PERIODS))}")
    return int(days)


def _calendar(days: int) -> list[str]:
    """Every local date in the period, oldest first, so quiet days show as gaps."""
    today = dt.date.today()
    return [(today - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def routes(desk: Desk) -> list[Route]:
    async def dashboard(request: Request) -> Response:
        who = await desk.require(request, "dashboard")
        days = _days(request)
        since = time.time() - days * 86400
        db, _ = await desk.store()
        started = time.perf_counter()
        found = await stats.per_day(db, since)
        per_day = {day: found.get(day, {}) for day in _calendar(days)} if found else {}
        rules = await stats.per_rule(db, since)
        latency = await stats.latency(db, since)
        terms = [r for r in rules if r.rule.startswith("language.")]
        wrong = sorted((r for r in rules if r.false_positives), key=lambda r: -r.false_positives)
        totals: dict[str, int] = {}
        for counts in per_day.values():
            for verdict, n in counts.items():
                totals[verdict] = totals.get(verdict, 0) + n
        return desk.page(
            request, "dashboard.html", who, days=days, periods=PERIODS, totals=totals,
            took=(time.perf_counter() - started) * 1000,
            verdicts=charts.stacked_days(per_day, f"Messages per day by verdict, last {days} days"),
            checks=charts.bars(stats.per_check(rules), "Findings per check"),
            top_terms=charts.bars({r.rule.removeprefix("language."): r.hits for r in terms},
                                  "Hits per wordlist term"),
            misfires=charts.bars({r.rule: r.false_positives for r in wrong},
                              "False positives recorded by reviewers"),
            latency=charts.lines({"median": {d: v[0] for d, v in latency.items()},
                                  "95th percentile": {d: v[1] for d, v in latency.items()}},
                                 "Time mailguard adds to delivered mail", " ms"))

    async def terms(request: Request) -> Response:
        who = await desk.require(request, "terms")
        days = _days(request)
        db, _ = await desk.store()
        language = desk.settings().checks.get("language")
        listed = language.lexicon.terms if language is not None else []
        seen = {r.rule.removeprefix("language."): r
                for r in await stats.per_rule(db, time.time() - days * 86400, "language.")}
        rows = []
        for term in listed:
            rule = f"{term.category}:{term.id.rpartition(':')[2]}"
            hit = seen.pop(rule, None)
            rows.append({"rule": rule, "entry": term.text, "category": term.category,
                         "severity": term.severity, "kind": term.kind,
                         "hits": hit.hits if hit else 0,
                         "false_positives": hit.false_positives if hit else 0,
                         "last": hit.last if hit else None})
        for rule in language.rules.rules if language is not None else []:
            key = f"{rule.category}:rule-{rule.name}"
            hit = seen.pop(key, None)
            rows.append({"rule": key, "entry": rules.describe(rule), "category": rule.category,
                         "severity": rule.severity, "kind": "rule",
                         "hits": hit.hits if hit else 0,
                         "false_positives": hit.false_positives if hit else 0,
                         "last": hit.last if hit else None})
        gone = [{"rule": rule, "entry": "(no longer listed)", "category": rule.partition(":")[0],
                 "severity": "", "kind": "", "hits": r.hits, "false_positives": r.false_positives,
                 "last": r.last} for rule, r in seen.items()]
        rows = sorted(rows + gone, key=lambda r: (-r["hits"], -r["false_positives"], r["rule"]))
        tried: list[dict[str, str]] | None = None
        text = ""
        if request.method == "POST":
            form = await checked_form(request)
            text = str(form.get("text", ""))[:100_000]
            tried = (lexicon.explain(language.lexicon, [("text", text, False)])
                     + rules.explain(language.rules, [("text", text, False)])) if language else []
        return desk.page(request, "terms.html", who, rows=rows, days=days, periods=PERIODS,
                         tried=tried, text=text, enabled=language is not None)

    async def events(request: Request) -> Response:
        who = await desk.require(request, "events")
        q = request.query_params
        page = q.get("page", "1")
        if not page.isdigit() or int(page) < 1:
            raise HTTPException(400, "page: a page number from 1")
        db, _ = await desk.store()
        rows, total = await EventLog(db).search(
            verdict=q.get("verdict", "")[:30], sender=q.get("sender", "")[:200].strip(),
            rule=q.get("rule", "")[:100].strip(), since=parse_day(q.get("since", ""), "since"),
            until=parse_day(q.get("until", ""), "until", end=True), limit=PAGE,
            offset=(int(page) - 1) * PAGE)
        kept = {k: v for k, v in q.items() if k != "page" and v}
        return desk.page(request, "events.html", who, rows=rows, total=total, page=int(page),
                         pages=max(1, -(-total // PAGE)), q=q, query=urllib.parse.urlencode(kept))

    return [Route("/dashboard", dashboard), Route("/terms", terms, methods=["GET", "POST"]),
            Route("/events", events)]
