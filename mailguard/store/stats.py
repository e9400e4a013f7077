"""Numbers from the event log for IT and the DPO: verdicts per day, hits per rule, false
positives, relay latency. Aggregated in the store; the event log holds no content, so neither
do these."""

from __future__ import annotations

from dataclasses import dataclass

from mailguard.store.backend import Queries


@dataclass(frozen=True)
class RuleHits:
    rule: str          # "language.threats:4", "identity.foreign_from"
    hits: int
    last: float
    false_positives: int = 0


async def per_day(db: Queries, since: float) -> dict[str, dict[str, int]]:
    """{day: {verdict: messages}} for days with any mail."""
    out: dict[str, dict[str, int]] = {}
    for day, verdict, n in await db.all(f"SELECT {db.day('ts')}, verdict, count(*) FROM events "
                                        "WHERE ts >= ? GROUP BY 1, 2 ORDER BY 1", (since,)):
        out.setdefault(day, {})[verdict] = n
    return out


async def per_rule(db: Queries, since: float, prefix: str = "") -> list[RuleHits]:
    """Hits per rule id (each message counts once per rule), most first, with the false
    positives reviewers recorded against it."""
    hits: dict[str, tuple[int, float]] = {}
    # The log keeps each message's rules as one comma-separated list; most messages share a
    # handful of lists, so SQLite groups them and only the distinct lists are split here.
    for checks, n, last in await db.all("SELECT checks, count(*), max(ts) FROM events "
                                        "WHERE ts >= ? AND checks != '' GROUP BY checks",
                                        (since,)):
        for rule in set(checks.split(",")):
            if rule.startswith(prefix):
                had = hits.get(rule, (0, 0.0))
                hits[rule] = (had[0] + n, max(had[1], last))
    wrong = {rule: (n, last) for rule, n, last in await db.all(
        "SELECT rule, count(*), max(ts) FROM false_positives WHERE ts >= ? AND rule LIKE ? "
        "ESCAPE '\\' GROUP BY rule", (since, prefix.replace("_", "\\_") + "%"))}
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


async def latency(db: Queries, since: float) -> dict[str, tuple[float, float, int]]:
    """{day: (median ms, 95th percentile ms, messages)} for mail that went upstream."""
    out: dict[str, tuple[float, float, int]] = {}
    day_of = db.day("ts")
    days = await db.all(f"SELECT {day_of}, count(*) FROM events WHERE ts >= ? AND "
                        "verdict = 'delivered' GROUP BY 1 ORDER BY 1", (since,))
    for day, n in days:
        marks = []
        for fraction in (0.5, 0.95):
            row = await db.one(
                f"SELECT latency_ms FROM events WHERE ts >= ? AND verdict = 'delivered' "
                f"AND {day_of} = ? ORDER BY latency_ms LIMIT 1 OFFSET ?",
                (since, day, min(n - 1, int(n * fraction))))
            marks.append(float(row[0]) if row else 0.0)
        out[day] = (marks[0], marks[1], n)
    return out
