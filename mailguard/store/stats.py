"""Numbers from the event log for IT and the DPO: verdicts per day, hits per rule, false
positives, relay latency. Aggregated in SQLite; the event log holds no content, so neither
do these."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

DAY = "date(ts, 'unixepoch', 'localtime')"


@dataclass(frozen=True)
class RuleHits:
    rule: str          # "language.threats:4", "identity.foreign_from"
    hits: int
    last: float
    false_positives: int = 0


async def per_day(db: aiosqlite.Connection, since: float) -> dict[str, dict[str, int]]:
    """{day: {verdict: messages}} for days with any mail."""
    out: dict[str, dict[str, int]] = {}
    async with db.execute(f"SELECT {DAY}, verdict, count(*) FROM events WHERE ts >= ? "
                          f"GROUP BY 1, 2 ORDER BY 1", (since,)) as cur:
        for day, verdict, n in await cur.fetchall():
            out.setdefault(day, {})[verdict] = n
    return out


async def per_rule(db: aiosqlite.Connection, since: float, prefix: str = "") -> list[RuleHits]:
    """Hits per rule id (each message counts once per rule), most first, with the false
    positives reviewers recorded against it."""
    hits: dict[str, tuple[int, float]] = {}
    # The log keeps each message's rules as one comma-separated list; most messages share a
    # handful of lists, so SQLite groups them and only the distinct lists are split here.
    async with db.execute("SELECT checks, count(*), max(ts) FROM events WHERE ts >= ? AND "
                          "checks != '' GROUP BY checks", (since,)) as cur:
        for checks, n, last in await cur.fetchall():
            for rule in set(checks.split(",")):
                if rule.startswith(prefix):
                    had = hits.get(rule, (0, 0.0))
                    hits[rule] = (had[0] + n, max(had[1], last))
    async with db.execute(
            "SELECT rule, count(*), max(ts) FROM false_positives WHERE ts >= ? AND rule LIKE ? "
            "ESCAPE '\\' GROUP BY rule", (since, prefix.replace("_", "\\_") + "%")) as cur:
        wrong = {rule: (n, last) for rule, n, last in await cur.fetchall()}
    rows = [RuleHits(rule, hits.get(rule, (0, 0))[0],
                     max(hits.get(rule, (0, 0))[1], wrong.get(rule, (0, 0))[1]),
                     wrong.get(rule, (0, 0))[0]) for rule in hits.keys() | wrong.keys()]
    return sorted(rows, key=lambda r: (-r.hits, r.rule))


def per_check(rules: list[RuleHits]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rules:
        check = r.rule.partition(".")[0]
        out[check] = out.get(check, 0) + r.hits
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


async def latency(db: aiosqlite.Connection, since: float) -> dict[str, tuple[float, float, int]]:
    """{day: (median ms, 95th percentile ms, messages)} for mail that went upstream."""
    out: dict[str, tuple[float, float, int]] = {}
    async with db.execute(f"SELECT {DAY}, count(*) FROM events WHERE ts >= ? AND "
                          f"verdict = 'delivered' GROUP BY 1 ORDER BY 1", (since,)) as cur:
        days = await cur.fetchall()
    for day, n in days:
        marks = []
        for fraction in (0.5, 0.95):
            async with db.execute(
                    f"SELECT latency_ms FROM events WHERE ts >= ? AND verdict = 'delivered' "
                    f"AND {DAY} = ? ORDER BY latency_ms LIMIT 1 OFFSET ?",
                    (since, day, min(n - 1, int(n * fraction)))) as cur:
                row = await cur.fetchone()
            marks.append(float(row[0]) if row else 0.0)
        out[day] = (marks[0], marks[1], n)
    return out
