"""Working hours: a weekly schedule in the school's time zone, with holidays, so a finding can
say whether a message was sent in hours (vale section 5.2, excalibur section 15: personal use
out of working hours)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailguard.config import Section

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class WorkingHours:
    zone: ZoneInfo
    week: tuple[tuple[tuple[dt.time, dt.time], ...], ...]   # per weekday, Monday first
    holidays: frozenset[dt.date]

    def contains(self, when: float) -> bool:
        local = dt.datetime.fromtimestamp(when, self.zone)
        if local.date() in self.holidays:
            return False
        now = local.time()
        return any(start <= now < end for start, end in self.week[local.weekday()])

    def describe(self, when: float) -> str:
        local = dt.datetime.fromtimestamp(when, self.zone)
        inside = "in" if self.contains(when) else "outside"
        return f"sent {local:%a %d %b %H:%M} {self.zone.key}, {inside} working hours"


def _time(sec: Section, key: str, h: str, m: str) -> dt.time:
    if int(h) > 24 or int(m) > 59 or (int(h) == 24 and int(m)):
        raise sec.error(key, f"{h}:{m} is not a time of day")
    return dt.time.max if int(h) == 24 else dt.time(int(h), int(m))


def from_section(sec: Section) -> WorkingHours:
    """[…hours]: timezone, one "08:00-17:30" span (or a list) per day, holidays as dates or
    "from..to" ranges. Days not given are not working days."""
    name = sec.string("timezone", "Europe/London")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise sec.error("timezone", f"unknown time zone {name!r}") from None
    defaults = {d: "08:00-17:30" for d in DAYS[:5]}
    week = []
    for day in DAYS:
        value = sec.table.get(day, defaults.get(day, []))
        sec.seen.add(day)
        spans = [value] if isinstance(value, str) else value
        if not isinstance(spans, list):
            raise sec.error(day, 'must be a span such as "08:00-17:30" or a list of them')
        parsed = []
        for span in spans:
            m = _SPAN.match(str(span).replace(" ", ""))
            if not m:
                raise sec.error(day, f'{span!r} is not a span such as "08:00-17:30"')
            start, end = _time(sec, day, *m.group(1, 2)), _time(sec, day, *m.group(3, 4))
            if end <= start:
                raise sec.error(day, f"{span!r} ends before it starts")
            parsed.append((start, end))
        week.append(tuple(parsed))
    holidays: set[dt.date] = set()
    for item in sec.strings("holidays", []):
        first, _, last = item.partition("..")
        try:
            a = dt.date.fromisoformat(first.strip())
            b = dt.date.fromisoformat(last.strip()) if last else a
        except ValueError:
            raise sec.error("holidays", f'{item!r} is not a date or "2026-12-19..2027-01-04"') from None
        holidays.update(a + dt.timedelta(days=n) for n in range((b - a).days + 1))
    return WorkingHours(zone, tuple(week), frozenset(holidays))


def default() -> WorkingHours:
    """Monday to Friday, 08:00 to 17:30, in England."""
    day = ((dt.time(8, 0), dt.time(17, 30)),)
    return WorkingHours(ZoneInfo("Europe/London"), (day,) * 5 + ((), ()), frozenset())
