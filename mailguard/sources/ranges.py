"""The cloud services' shared outbound ranges: shipped in `mailguard/data/shared_ranges.toml`,
with its source and date, and replaced by a newer file IT downloads (`mailguard sources
update FILE`, kept in the data folder). Nothing is fetched from the internet at run time."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "shared_ranges.toml"
INSTALLED = "shared_ranges.toml"   # in the data folder, written by `mailguard sources update`
SERVICES = ("microsoft365", "google")


@dataclass(frozen=True)
class Service:
    """One cloud service's shared outbound ranges, and where and when they were read."""

    key: str
    name: str
    source: str
    date: date
    ranges: tuple[Network, ...]


@dataclass(frozen=True)
class Ranges:
    file: Path
    services: dict[str, Service]

    @property
    def date(self) -> date:
        return min(s.date for s in self.services.values())

    def shared(self) -> list[tuple[str, Network]]:
        """(service name, range) for every range that all of a service's tenants share."""
        return [(s.name, r) for s in self.services.values() for r in s.ranges]


class RangesError(ValueError):
    """A ranges file that cannot be used, worded `file: key: problem`."""


def parse(text: str, file: Path) -> Ranges:
    """A ranges file, checked whole: every service, each with name, source, date and ranges."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RangesError(f"{file}: not valid TOML: {e}") from None
    services = {}
    for key in SERVICES:
        entry = table.get(key)
        if not isinstance(entry, dict):
            raise RangesError(f"{file}: {key}: missing; the file must list {', '.join(SERVICES)}")
        for field in ("name", "source", "date"):
            if not isinstance(entry.get(field), str | date) or not str(entry[field]).strip():
                raise RangesError(f"{file}: {key}.{field}: missing or empty")
        try:
            when = entry["date"] if isinstance(entry["date"], date) else date.fromisoformat(
                entry["date"])
        except ValueError:
            raise RangesError(f"{file}: {key}.date: {entry['date']!r} is not a date "
                              "such as 2026-12-01") from None
        raw = entry.get("ranges")
        if not isinstance(raw, list) or not raw:
            raise RangesError(f"{file}: {key}.ranges: must be a non-empty list of networks")
        nets = []
        for item in raw:
            try:
                nets.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                raise RangesError(f"{file}: {key}.ranges: {item!r} is not a network") from None
        services[key] = Service(key, entry["name"], entry["source"], when, tuple(nets))
    return Ranges(file, services)


def load(data_dir: Path | None) -> Ranges:
    """The newest ranges there are: IT's update in the data folder if newer, else the shipped."""
    shipped = parse(SHIPPED.read_text(encoding="utf-8"), SHIPPED)
    installed = data_dir / INSTALLED if data_dir is not None else None
    if installed is None or not installed.is_file():
        return shipped
    newer = parse(installed.read_text(encoding="utf-8"), installed)
    return newer if newer.date >= shipped.date else shipped


def update(data_dir: Path, file: Path) -> tuple[Ranges, Ranges]:
    """Check `file` and keep it as the ranges in use (written durably); (old, new)."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RangesError(f"{file}: cannot read: {e}") from None
    new = parse(text, file)
    old = load(data_dir)
    if new.date < old.date:
        raise RangesError(f"{file}: date: {new.date} is older than the ranges in use "
                          f"({old.date}, {old.file}); nothing changed")
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / INSTALLED
    tmp = target.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return old, parse(text, target)
