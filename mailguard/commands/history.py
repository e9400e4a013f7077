"""`mailguard history import|status`: the misdirected check's recipient history, warmed from
an export of sent-mail metadata so a new install knows on its first day who each member of
staff usually writes to. Only keyed hashes of the pairs are stored (store/history.py); the
export itself is read and left where it is.

The export is a CSV of date, sender and recipients: one row per message (recipients
separated by ; or ,) or one row per recipient, as Microsoft 365's message trace gives it.
Columns are found by their usual names, or named with --column.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import re
import sys
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from mailguard.config import Settings

# The names exports give each column (lower case): ours, Microsoft 365 message trace,
# Google Workspace email log search, Exchange message tracking.
NAMES = {"date": ("date", "date_time_utc", "received", "sent", "timestamp", "time", "date (utc)"),
         "sender": ("sender", "sender_address", "senderaddress", "from", "sender address"),
         "recipients": ("recipients", "recipient_address", "recipientaddress", "to",
                        "recipient address", "recipient", "recipient-address")}
_SPLIT = re.compile(r"[;,\s]+")
_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M", "%Y-%m-%d")


class ExportError(ValueError):
    """A row or a header the import cannot use, worded `file: line N: problem`."""


def add_parser(command: Any) -> None:
    h = command("history", "recipient history for the misdirected check (hashes, not addresses)")
    sub = h.add_subparsers(dest="history_command", required=True)
    i = sub.add_parser("import", help="warm it from a CSV of sent mail: date, sender, recipients")
    i.add_argument("file", type=Path)
    i.add_argument("--column", action="append", default=[], metavar="OURS=THEIRS",
                   help="which export column holds date, sender or recipients")
    sub.add_parser("status", help="how many sender-recipient pairs and senders it knows")


def when(text: str) -> float:
    """A date as exports write it: ISO 8601, 01/12/2026 09:30 (UK), or RFC 5322."""
    text = text.strip()
    for parse in (lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")),
                  parsedate_to_datetime):
        try:
            moment = parse(text)
            break
        except (ValueError, TypeError, IndexError):
            continue
    else:
        for fmt in _FORMATS:
            try:
                moment = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"{text!r} is not a date (use 2026-12-01 09:30 or 01/12/2026 09:30)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def rows(path: Path, columns: dict[str, str]) -> tuple[list[tuple[float, str, list[str]]],
                                                       list[str]]:
    """(date, sender, recipients) of each usable row, and the rows left out as
    `file: line N: problem`."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        have = {(n or "").strip().lower(): n for n in reader.fieldnames or []}
        chosen = {}
        for ours, names in NAMES.items():
            wanted = columns.get(ours)
            found = (have.get(wanted.strip().lower()) if wanted else
                     next((have[n] for n in names if n in have), None))
            if found is None:
                raise ExportError(f"{path}: line 1: no {ours} column"
                                  + (f" called {wanted!r}" if wanted else
                                     f" (looked for {', '.join(names)}; name it with "
                                     f"--column {ours}=NAME)"))
            chosen[ours] = found
        out, problems = [], []
        for row in reader:
            try:
                ts = when(row[chosen["date"]] or "")
            except ValueError as e:
                problems.append(f"{path}: line {reader.line_num}: {e}")
                continue
            sender = (row[chosen["sender"]] or "").strip().strip("<>").lower()
            recipients = [r.strip("<>").lower() for r in _SPLIT.split(
                row[chosen["recipients"]] or "") if "@" in r]
            if "@" not in sender or not recipients:
                problems.append(f"{path}: line {reader.line_num}: needs a sender and "
                                "at least one recipient address")
                continue
            out.append((ts, sender, recipients))
    return out, problems


async def _import(settings: Settings, path: Path, columns: dict[str, str]) -> int:
    from mailguard.delivery import trace
    from mailguard.store.history import History, count, history_key
    from mailguard.store.opening import open_store

    found, problems = rows(path, columns)
    for problem in problems[:20]:
        print(f"warning: row skipped: {problem}", file=sys.stderr)
    if len(problems) > 20:
        print(f"warning: {len(problems) - 20} more rows skipped", file=sys.stderr)
    db = await open_store(settings.storage)
    try:
        history = History()
        await history.attach(db, history_key(trace.load_secret(
            settings.server.stamp_secret_file)))
        before, _ = await count(db)
        for ts, sender, recipients in sorted(found):
            history.saw(sender, recipients, ts)
        await history.flush()
        after, senders = await count(db)
    finally:
        await db.close()
    print(f"read {len(found)} rows from {path} ({len(problems)} skipped): "
          f"{after - before} new sender-recipient pairs; the history now holds {after} pairs "
          f"for {senders} senders, as keyed hashes")
    return 0


async def _status(settings: Settings) -> int:
    from mailguard.store.history import count
    from mailguard.store.opening import open_store

    db = await open_store(settings.storage)
    try:
        pairs, senders = await count(db)
    finally:
        await db.close()
    days = settings.storage.event_retention_days
    print(f"recipient history: {pairs} sender-recipient pairs for {senders} senders, kept as "
          f"keyed hashes; a pair not seen for {days} days (event_retention_days) is forgotten")
    return 0


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    if args.history_command == "status":
        return asyncio.run(_status(settings))
    columns = {}
    for item in args.column:
        ours, eq, theirs = item.partition("=")
        if not eq or ours not in NAMES:
            print(f"mailguard: --column {item}: use date=NAME, sender=NAME or "
                  "recipients=NAME", file=sys.stderr)
            return 2
        columns[ours] = theirs
    try:
        return asyncio.run(_import(settings, args.file, columns))
    except (ExportError, UnicodeDecodeError, csv.Error) as e:
        print(f"mailguard: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError:
        print(f"mailguard: {args.file}: no such file", file=sys.stderr)
        return 2
