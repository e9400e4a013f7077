#!/usr/bin/env python3
"""Gateways on the shared store (issue 18): smtp-source → mailguard (the shipped policy in
full, 10 KB) → smtp-sink, with the store on SQLite and on PostgreSQL, one node and two nodes
behind HAProxy, interleaved in one run. Throughput is the median of three runs as a ratio to
one node on SQLite; p99 is the added latency at a steady 100 messages a second.

All of it on this one machine: smtp-source, the sink, PostgreSQL, HAProxy and every node share
its cores, so two nodes here measure what the store lets them do together, not what two
machines would give. What separate machines would give is worked out from CPU instead: each
run counts the CPU seconds of the gateway processes and of the PostgreSQL server (postmaster
and every backend, live or exited), per message. One node's rate on its own machine is its
cores over its CPU per message; one PostgreSQL server's capacity is its cores over its CPU per
message. A row with the hourly limit off splits the store's per-message transaction from its
share of the event batches.
"""

from __future__ import annotations

import asyncio
import os
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
         balanced: bool = False, hourly: bool = True) -> Mailguard:
    """A `mailguard serve` with the shipped config, on the given store."""
    overrides: dict[str, Any] = {
        "storage": storage, "server": {"node": name, "proxy_protocol": balanced,
                                       "proxy_from": ["127.0.0.1/32"]}}
    if not hourly:
        overrides["checks"] = {"limits": {"hourly": 0}}
    return Mailguard(folder, sink.port, 1, shipped=True, overrides=overrides)


TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu(pids: list[int]) -> float:
    """CPU seconds the processes have spent (user and system)."""
    total = 0.0
    for pid in pids:
        try:
            fields = _stat(pid)
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def postgres_cpu(server: PostgresServer) -> float:
    """CPU seconds of the whole PostgreSQL server: the postmaster, its exited children
    (cutime, cstime) and its live backends and helpers."""
    pid = int((server.data / "postmaster.pid").read_text().split()[0])
    fields = _stat(pid)
    total = sum(int(f) for f in fields[11:15]) / TICK
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                and _parent(int(p.name)) == pid]
    return total + process_cpu(children)


def _parent(pid: int) -> int:
    try:
        return int(_stat(pid)[1])
    except (FileNotFoundError, IndexError, ValueError):
        return -1


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
            unlimited = {"url": server.fresh_database(), "password_file": str(secret)}
            paths: dict[str, tuple[int, list[Mailguard]]] = {}
            sqlite = node(Path(tmp) / "sqlite", sink, {}, "solo")
            started.append(sqlite)
            paths["sqlite, 1 node"] = (sqlite.port, [sqlite])
            pg = node(Path(tmp) / "pg", sink, solo_pg, "solo")
            started.append(pg)
            paths["postgresql, 1 node"] = (pg.port, [pg])
            free = node(Path(tmp) / "pg-free", sink, unlimited, "free", hourly=False)
            started.append(free)
            paths["postgresql, 1 node, no hourly limit"] = (free.port, [free])
            pair = [node(Path(tmp) / f"n{i}", sink, shared, f"n{i}", balanced=True)
                    for i in (1, 2)]
            started.extend(pair)
            balancer = Haproxy({f"n{i}": (gw.port, web_port(gw.folder))
                                for i, gw in enumerate(pair, 1)})
            started.append(balancer)
            paths["postgresql, 2 nodes (HAProxy)"] = (balancer.port, pair)
            time.sleep(1)
            runs: dict[str, list[float]] = {name: [] for name in paths}
            node_ms: dict[str, list[float]] = {name: [] for name in paths}
            pg_ms: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(3):
                for name, (port, gateways) in paths.items():
                    pids = [p for gw in gateways for p in gw.pids()]
                    cpu, store = process_cpu(pids), postgres_cpu(server)
                    runs[name].append(throughput(port, sink, messages, SIZE, sessions))
                    time.sleep(0.5)   # the last event batch is written
                    node_ms[name].append((process_cpu(pids) - cpu) * 1000 / messages)
                    pg_ms[name].append((postgres_cpu(server) - store) * 1000 / messages)
            base = statistics.median(runs["sqlite, 1 node"])
            for name, (port, _) in paths.items():
                p50, p99 = percentiles(asyncio.run(_latencies(port, 100, 1000, SIZE, 10)))
                out[name] = {"msg_s": statistics.median(runs[name]),
                             "ratio": statistics.median(runs[name]) / base,
                             "p50_ms": p50, "p99_ms": p99,
                             "node_cpu_ms": statistics.median(node_ms[name]),
                             "pg_cpu_ms": statistics.median(pg_ms[name])}
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
        lines.append(f"  {name:36} {row['msg_s']:6.0f} msg/s ({row['ratio']:.2f}x); "
                     f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms; CPU a "
                     f"message: gateways {row['node_cpu_ms']:.2f} ms, "
                     f"PostgreSQL {row['pg_cpu_ms']:.2f} ms")
    solo, shared = r["sqlite, 1 node"], r["postgresql, 1 node"]
    cores = os.cpu_count() or 1
    lines.append(
        f"  on separate machines of {cores} cores (from CPU, not measured): one node "
        f"~{1000 * cores / solo['node_cpu_ms']:.0f} msg/s on SQLite, "
        f"~{1000 * cores / shared['node_cpu_ms']:.0f} on PostgreSQL; one PostgreSQL server "
        f"~{1000 * cores / shared['pg_cpu_ms']:.0f} msg/s, i.e. "
        f"~{shared['node_cpu_ms'] / shared['pg_cpu_ms']:.0f} nodes' worth")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(measure()))
