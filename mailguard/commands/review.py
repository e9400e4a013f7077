"""What the DPO and IT run on the stores: events, retention, and the held-mail queue."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from mailguard.commands.common import table, when, with_stores
from mailguard.config import Settings


def cmd_events(args: argparse.Namespace, settings: Settings) -> int:
    from mailguard.store.events import dumps

    async def work(db: Any, quarantine: Any, events: Any) -> int:
        rows = await events.since(time.time() - args.since)
        if args.json:
            for row in rows:
                print(dumps(row))
            return 0
        for row in rows:
            row["when"] = when(row["ts"])
            row["checks"] = ",".join(row["checks"]) or "-"
            row["rcpts"] = row["rcpt_count"]
        print(table(rows, ["when", "id", "client", "sender", "rcpts", "verdict", "checks",
                            "latency_ms"]))
        return 0

    return asyncio.run(with_stores(settings, work))


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from mailguard import retention

    async def work(db: Any, quarantine: Any, events: Any) -> int:
        gone, expired = await retention.apply(settings, events, quarantine)
        print(json.dumps({"events_deleted": gone, "quarantine_expired": expired}) if args.json
              else f"deleted {gone} events; expired {expired} held messages")
        return 0

    return asyncio.run(with_stores(settings, work))


def cmd_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from mailguard import review
    from mailguard.delivery import trace
    from mailguard.store import audit
    from mailguard.store.sealing import SealError

    actor = args.actor or audit.current_actor()

    async def work(db: Any, quarantine: Any, events: Any) -> int:
        if args.action == "list":
            items = await quarantine.list(None if args.status == "all" else args.status)
            await audit.record(db, actor, "list", None, f"status={args.status}")
            if args.json:
                for h in items:
                    print(json.dumps(h.summary(), sort_keys=True))
                return 0
            rows = [{**h.summary(), "when": when(h.ts), "rules": ",".join(
                h.summary()["rules"])} for h in items]
            print(table(rows, ["when", "id", "status", "sender", "recipients", "rules",
                                "reason"]))
            return 0
        if args.action == "rekey":
            files, subjects, problems = await quarantine.rekey(actor)
            await audit.record(db, actor, "rekey", None,
                               f"{files} files, {subjects} subjects; {len(problems)} not")
            print(f"re-sealed under the current key: {files} messages, {subjects} subjects")
            for problem in problems:
                print(f"not re-sealed: {problem}", file=sys.stderr)
            if problems:
                print("keep the old keys in quarantine_old_key_files until these open",
                      file=sys.stderr)
                return 1
            print("every held message now opens with the current key: take the old keys out "
                  "of quarantine_old_key_files, restart mailguard, then destroy them (and the "
                  "backups that hold them)")
            return 0
        try:
            if args.action == "show":
                held = await quarantine.get(args.id)
                if held is None:
                    raise review.ReviewError(f"no held message with id {args.id}")
                await audit.record(db, actor, "show", args.id, "raw" if args.raw else "")
                if args.raw:
                    data = await quarantine.read(held)
                    sys.stdout.buffer.write(data or b"(content removed by retention)\n")
                    return 0
                info = {**held.__dict__, "audit": await audit.trail(db, args.id)}
                if info.get("plan") is not None:   # the steps a release carries out
                    from mailguard.store.quarantine import plan_to_json

                    info["plan"] = json.loads(plan_to_json(info["plan"]))
                if args.json:
                    print(json.dumps(info, indent=2, sort_keys=True))
                else:
                    for key in ("id", "status", "reason", "sender", "recipients",
                                "held_recipients", "client", "auth_user", "size", "note",
                                "last_reply"):
                        print(f"{key:16} {info[key]}")
                    print(f"{'received':16} {when(held.ts)}")
                    for f in held.findings:
                        print(f"finding          {f['rule']} ({f['action']}): {f['message']} "
                              f"[{f['clause']}] {f['evidence']}")
                    for a in info["audit"]:
                        print(f"audit            {when(a['ts'])} {a['actor']} {a['action']}"
                              f" {a['detail'] or ''}")
                return 0
            if args.action == "release":
                secret = trace.load_secret(settings.server.stamp_secret_file)
                result = await review.release(settings, quarantine, db, args.id, actor, secret)
                out = {"id": args.id, "delivered": result.delivered, "refused": result.refused,
                       "upstream": result.reply, "released": result.complete}
                print(json.dumps(out) if args.json else
                      f"{args.id}: delivered to {len(result.delivered)}; "
                      + ("released" if result.complete else
                         "still held for: " + "; ".join(f"{r} ({why})" for r, why in
                                                        result.refused.items())))
                return 0 if result.complete else 1
            if args.action == "reject":
                reply = await review.reject(settings, quarantine, db, args.id, actor, args.note)
                print(f"{args.id}: rejected; notice to sender: {reply or 'no sender to notify'}")
                return 0
            if args.action == "delete":
                await review.delete(quarantine, db, args.id, actor)
                print(f"{args.id}: deleted")
                return 0
        except (review.ReviewError, SealError) as e:
            print(f"mailguard: {e}", file=sys.stderr)
            return 1
        return 2

    return asyncio.run(with_stores(settings, work))
