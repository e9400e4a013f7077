"""Working hours: a weekly schedule in the school's time zone, with holidays, so a finding can
say whether a message was sent in hours (vale section 5.2, excalibur section 15: personal use
out of working hours)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator

from mailguard.settings.schema import KeyProblem, Text
from mailguard.settings.schema import Options as BaseOptions

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


def _time(h: str, m: str) -> dt.time:
    if int(h) > 24 or int(m) > 59 or (int(h) == 24 and int(m)):
        raise ValueError(f"{h}:{m} is not a time of day")
    return dt.time.max if int(h) == 24 else dt.time(int(h), int(m))


def _spans(value: Any) -> tuple[tuple[dt.time, dt.time], ...]:
    spans = [value] if isinstance(value, str) else value
    if not isinstance(spans, list | tuple):
        raise ValueError('must be a span such as "08:00-17:30" or a list of them')
    parsed = []
    for span in spans:
        m = _SPAN.match(str(span).replace(" ", ""))
        if not m:
            raise ValueError(f'{span!r} is not a span such as "08:00-17:30"')
        start, end = _time(*m.group(1, 2)), _time(*m.group(3, 4))
        if end <= start:
            raise ValueError(f"{span!r} ends before it starts")
        parsed.append((start, end))
    return tuple(parsed)


def _holidays(value: Any) -> frozenset[dt.date]:
    holidays: set[dt.date] = set()
    for item in value:
        first, _, last = str(item).partition("..")
        try:
            a = dt.date.fromisoformat(first.strip())
            b = dt.date.fromisoformat(last.strip()) if last else a
        except ValueError:
            raise ValueError(f'{item!r} is not a date or "2026-12-19..2027-01-04"') from None
        holidays.update(a + dt.timedelta(days=n) for n in range((b - a).days + 1))
    return frozenset(holidays)


Spans = Annotated[tuple[tuple[dt.time, dt.time], ...], BeforeValidator(_spans)]
_DAY = ((dt.time(8, 0), dt.time(17, 30)),)


class Options(BaseOptions):
    """`[…hours]`: the working week in the school's time zone. Days not given (Saturday and
    Sunday, by default) are not working days."""

    timezone: Text = "Europe/London"
    """The school's time zone."""
    mon: Spans = _DAY
    """Working hours on Mondays: "08:00-17:30", or a list of spans."""
    tue: Spans = _DAY
    """Tuesdays."""
    wed: Spans = _DAY
    """Wednesdays."""
    thu: Spans = _DAY
    """Thursdays."""
    fri: Spans = _DAY
    """Fridays."""
    sat: Spans = ()
    """Saturdays."""
    sun: Spans = ()
    """Sundays."""
    holidays: Annotated[frozenset[dt.date], BeforeValidator(_holidays)] = frozenset()
    """Dates that are not working days: "2026-12-24", or "2026-12-19..2027-01-04"."""


def build(o: Options) -> WorkingHours:
    """The calendar: its time zone looked up now (a bad name is a config error)."""
    try:
        zone = ZoneInfo(o.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise KeyProblem("timezone", f"unknown time zone {o.timezone!r}") from None
    return WorkingHours(zone, tuple(getattr(o, day) for day in DAYS), o.holidays)


def default() -> WorkingHours:
    """Monday to Friday, 08:00 to 17:30, in England."""
    day = ((dt.time(8, 0), dt.time(17, 30)),)
    return WorkingHours(ZoneInfo("Europe/London"), (day,) * 5 + ((), ()), frozenset())
