"""`mailguard sources`: who may relay (`list`), and `update FILE` to install a newer list of
the cloud services' shared ranges that IT downloaded. Nothing here reaches the internet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mailguard.config import Settings
from mailguard.sources import ranges


def cmd_sources(args: argparse.Namespace, settings: Settings) -> int:
    if args.sources_command == "list":
        for source in settings.sources.items:
            print(source.explain(settings.organisation.name))
        r = settings.sources.ranges
        for service in r.services.values():
            print(f"{service.name}: {len(service.ranges)} ranges, from {service.source}, "
                  f"dated {service.date} ({r.file})")
        return 0
    return _update(Path(args.file), settings)


def _update(file: Path, settings: Settings) -> int:
    data_dir = settings.storage.data_dir
    try:
        new = ranges.parse(file.read_text(encoding="utf-8"), file)
    except (OSError, UnicodeDecodeError) as e:
        print(f"mailguard: {file}: cannot read: {e}", file=sys.stderr)
        return 2
    except ranges.RangesError as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    # A network source that the new ranges would make a shared one: say so before installing,
    # or the next reload would fail on it.
    for source in settings.sources.items:
        for net in source.networks if source.kind == "network" else ():
            for service, shared in new.shared():
                if net.version == shared.version and net.overlaps(shared):
                    print(f"mailguard: {settings.file}: sources.{source.name}: {net} overlaps "
                          f"{shared}, which {file} lists as a shared range of {service}; fix "
                          "the source first (nothing changed)", file=sys.stderr)
                    return 2
    try:
        old, installed = ranges.update(data_dir, file)
    except ranges.RangesError as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    for key, service in installed.services.items():
        before = set(old.services[key].ranges)
        after = set(service.ranges)
        print(f"{service.name}: {len(after)} ranges dated {service.date} "
              f"({len(after - before)} new, {len(before - after)} gone)")
    print(f"installed {installed.file}; `systemctl reload mailguard` (or SIGHUP) to use them")
    return 0


def add_parser(command: Any) -> None:
    s = command("sources", "who may relay, and the cloud services' shared ranges")
    sub = s.add_subparsers(dest="sources_command", required=True)
    sub.add_parser("list", help="each source, in a sentence, and the ranges file in use")
    u = sub.add_parser("update", help="install a newer shared-ranges file you downloaded")
    u.add_argument("file")
