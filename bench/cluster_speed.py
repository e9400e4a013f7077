#!/usr/bin/env python3
"""Gateways on the shared store (issue 18): smtp-source → mailguard (the shipped policy in
full, 10 KB) → smtp-sink, with the store on SQLite and on PostgreSQL, one node and two nodes
behind HAProxy, interleaved in one run. Throughput is the median of three runs as a ratio to
one node on SQLite; p99 is the added latency at a steady 100 messages a second.

All of it on this one machine: smtp-source, the sink, PostgreSQL, HAProxy and every node share
its cores, so two nodes here measure what the store lets them do together, not what two
machines would give.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]
from haproxy import Haproxy  # noqa: E402
from pgserver import PostgresServer  # noqa: E402
from run import Mailguard, SmtpSink, _latencies, percentiles, throughput  # noqa: E402

SIZE = 10 * 1024


def node(folder: Path, sink: SmtpSink, storage: dict[str, Any], name: str,
         balanced: bool = False) -> Mailguard:
    """A `mailguard serve` with the shipped config, on the given store."""
    return Mailguard(folder, sink.port, 1, shipped=True, overrides={
        "storage": storage, "server": {"node": name, "proxy_protocol": balanced,
                                       "proxy_from": ["127.0.0.1/32"]}})


def web_port(folder: Path) -> int:
    import tomllib

    config = tomllib.loads((folder / "mailguard.toml").read_text())
    return int(config["web"]["listen"].rpartition(":")[2])


def measure(messages: int = 3000, sessions: int = 20) -> dict[str, Any]:
    server = PostgresServer()
    sink = SmtpSink()
    started: list[Any] = []
    out: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            secret = Path(tmp) / "pg.password"
            secret.write_text(server.password + "\n")
            secret.chmod(0o600)
            key = Path(tmp) / "quarantine.key"
            from mailguard.store.sealing import key_file

            key_file(key)
            shared = {"url": server.fresh_database(), "password_file": str(secret),
                      "quarantine_key_file": str(key)}
            solo_pg = {"url": server.fresh_database(), "password_file": str(secret)}
            paths: dict[str, int] = {}
            sqlite = node(Path(tmp) / "sqlite", sink, {}, "solo")
            started.append(sqlite)
            paths["sqlite, 1 node"] = sqlite.port
            pg = node(Path(tmp) / "pg", sink, solo_pg, "solo")
            started.append(pg)
            paths["postgresql, 1 node"] = pg.port
            pair = [node(Path(tmp) / f"n{i}", sink, shared, f"n{i}", balanced=True)
                    for i in (1, 2)]
            started.extend(pair)
            balancer = Haproxy({f"n{i}": (gw.port, web_port(gw.folder))
                                for i, gw in enumerate(pair, 1)})
            started.append(balancer)
            paths["postgresql, 2 nodes (HAProxy)"] = balancer.port
            time.sleep(1)
            runs: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(3):
                for name, port in paths.items():
                    runs[name].append(throughput(port, sink, messages, SIZE, sessions))
            base = statistics.median(runs["sqlite, 1 node"])
            for name, port in paths.items():
                p50, p99 = percentiles(asyncio.run(_latencies(port, 100, 1000, SIZE, 10)))
                out[name] = {"msg_s": statistics.median(runs[name]),
                             "ratio": statistics.median(runs[name]) / base,
                             "p50_ms": p50, "p99_ms": p99}
    finally:
        for thing in reversed(started):
            thing.stop()
        sink.stop()
        server.close()
    return out


def report(r: dict[str, Any]) -> str:
    lines = ["gateways by store, the shipped policy in full, 10 KB (median of 3, ratio to one "
             "node on SQLite; latency at 100 msg/s):"]
    for name, row in r.items():
        lines.append(f"  {name:32} {row['msg_s']:6.0f} msg/s ({row['ratio']:.2f}x); "
                     f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(measure()))
