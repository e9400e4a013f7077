"""Milter mode against the relay, both behind the school's own Postfix, with the shipped policy
in full: smtp-source → Postfix → smtp-sink, three ways, interleaved in one run.

  alone     stock Postfix, relayhost the sink
  milter    the same Postfix with `smtpd_milters` = mailguard milter (the shipped config),
            on a UNIX socket (as docs/milter.md advises) and on loopback TCP
  relay     Postfix with mailguard (the shipped config, as `mailguard serve`) as its relayhost
  floor     the milter on a UNIX socket with every check off: what the protocol, the event and
            the stamp cost, the least any policy can add
  disclaimer the milter with the disclaimer check alone: every message's body replaced, so
            Postfix's cleanup takes the body twice and rewrites its queue file; what adding a
            disclaimer costs Postfix, whatever milter adds it
  opendkim  the same Postfix with OpenDKIM (C, libmilter) verifying instead: what a milter
            written in C that reads every message and changes none costs Postfix here

The target (issue 17): Postfix with the milter keeps at least two thirds of stock Postfix's
throughput. Each row is the median of three interleaved runs, as a ratio to `alone`. Beside
it, the CPU each message costs the whole machine (/proc/stat) and the mailguard process: where
Postfix alone keeps every core busy, the ratio is what the milter's CPU leaves to Postfix.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from milter import milter_postfix, wait_for_socket  # noqa: E402
from postfix import Postfix, free_port, wait_for_port  # noqa: E402


class MilterProcess:
    """`mailguard milter` with config/mailguard.toml as shipped (bench/run.py's changes), on
    a UNIX socket given to Postfix's group (docs/milter.md's advice) or on loopback TCP."""

    def __init__(self, folder: Path, upstream_port: int, unix: bool,
                 only: tuple[str, ...] | None = None) -> None:
        from run import shipped_config

        folder.mkdir(parents=True)
        folder.chmod(0o755)   # Postfix's daemons reach the socket in it
        self.port = free_port()
        self.socket = folder / "milter.sock" if unix else None
        listen = (f'"unix:{self.socket}"\ngroup = "postfix"' if self.socket
                  else f'"inet:127.0.0.1:{self.port}"')
        config = folder / "mailguard.toml"
        text = shipped_config(free_port(), upstream_port, 1, folder / "var")
        if only is not None:   # every other check there is, turned off
            import tomllib

            from conftest import toml_dump

            from mailguard.checks.registry import REGISTRY

            parsed = tomllib.loads(text)
            parsed["checks"] = {name: parsed["checks"][name] if name in only
                                else {"action": "off"} for name in REGISTRY}
            text = toml_dump(parsed)
        config.write_text(text + f"\n[milter]\nlisten = {listen}\n")
        self.log = (folder / "mailguard.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailguard", "milter", "--config", str(config)],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        if self.socket:
            wait_for_socket(self.socket, self.proc)
        else:
            wait_for_port(self.port)

    @property
    def where(self) -> int | Path:
        return self.socket or self.port

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class OpenDkim:
    """Debian's opendkim in verify mode on loopback TCP, in the foreground, adding no header
    to unsigned mail: a C milter that reads headers and body and answers accept."""

    BINARY = Path("/usr/sbin/opendkim")

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        self.port = free_port()
        config = folder / "opendkim.conf"
        config.write_text(f"Mode v\nSocket inet:{self.port}@127.0.0.1\nSyslog no\n"
                          f"Background no\nPidFile {folder / 'pid'}\nUserID opendkim\n"
                          "AlwaysAddARHeader no\n")
        self.proc = subprocess.Popen([str(self.BINARY), "-f", "-x", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    @property
    def where(self) -> int:
        return self.port

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def busy() -> float:
    """CPU seconds the whole machine has spent busy (every process: Postfix, the load tools,
    mailguard), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal …: busy is ours, not idle, not waiting
    # on the disk, and not stolen by the host's other guests (a shared machine's noise).
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(sink: Any, alone: Postfix, messages: int, sessions: int, sizes: list[int],
            workers: int) -> dict[str, Any]:
    from run import Mailguard, throughput

    folder = Path(tempfile.mkdtemp(prefix="mailguard-milter-bench-"))
    folder.chmod(0o755)
    milters = {"unix": MilterProcess(folder / "unix", sink.port, True),
               "inet": MilterProcess(folder / "inet", sink.port, False),
               "floor": MilterProcess(folder / "floor", sink.port, True, only=()),
               "disclaimer": MilterProcess(folder / "disclaimer", sink.port, True,
                                           only=("disclaimer",))}
    if OpenDkim.BINARY.exists():   # scripts/system-deps.sh bench installs it
        milters["opendkim"] = OpenDkim(folder / "opendkim")   # type: ignore[assignment]
    else:
        print("opendkim is not installed: the C milter row is left out", flush=True)
    relay = Mailguard(folder / "relay", sink.port, workers, shipped=True)
    paths = {"postfix": alone.port}
    started: list[Postfix] = []
    results: dict[str, Any] = {}
    try:
        for name, m in milters.items():
            pf = milter_postfix(f"[127.0.0.1]:{sink.port}", m.where,
                                smtpd_client_connection_count_limit="0")
            pf.start()
            started.append(pf)
            paths[f"milter_{name}"] = pf.port
        pf = Postfix(f"[127.0.0.1]:{relay.port}",
                     extra={"smtpd_client_connection_count_limit": "0"})
        pf.start()
        started.append(pf)
        paths["relay"] = pf.port
        time.sleep(1)
        owner = {f"milter_{name}": m.proc.pid for name, m in milters.items()
                 if isinstance(m, MilterProcess)}
        for size in sizes:
            runs, cpu = [], {name: [] for name in paths}
            for _ in range(3):
                run = {}
                for name, port in paths.items():
                    machine, own = busy(), cpu_seconds(owner.get(name))
                    run[name] = throughput(port, sink, messages, size, sessions)
                    cpu[name].append(((busy() - machine) * 1000 / messages,
                                      (cpu_seconds(owner.get(name)) - own) * 1000 / messages))
                runs.append(run)
            row: dict[str, Any] = {}
            for name in paths:
                row[f"{name}_msg_s"] = statistics.median(r[name] for r in runs)
                row[f"{name}_cpu_ms"] = statistics.median(m for m, _ in cpu[name])
                if name in owner:
                    row[f"{name}_mailguard_cpu_ms"] = statistics.median(o for _, o in cpu[name])
                if name != "postfix":
                    ratios = sorted(r[name] / r["postfix"] for r in runs)
                    row[f"{name}_ratio"] = ratios[1]
                    row[f"{name}_ratio_range"] = [ratios[0], ratios[2]]
            results[f"{size // 1024}KB"] = row
    finally:
        for pf in started:
            pf.stop()
        for m in milters.values():
            m.stop()
        relay.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def report(results: dict[str, Any]) -> str:
    lines = ["behind the school's own Postfix, the shipped policy in full (median of 3 "
             "interleaved runs, ratio to Postfix alone):"]
    names = {"milter_unix": "+ mailguard milter (UNIX socket)",
             "milter_inet": "+ mailguard milter (loopback TCP)", "relay": "→ mailguard relay",
             "milter_floor": "+ the milter with every check off",
             "milter_disclaimer": "+ the milter with the disclaimer alone",
             "milter_opendkim": "+ OpenDKIM verifying (C)"}
    for size, row in results.items():
        parts = [f"Postfix alone {row['postfix_msg_s']:.0f}/s"]
        for key, label in names.items():
            if f"{key}_ratio" not in row:
                continue
            lo, hi = row[f"{key}_ratio_range"]
            parts.append(f"{label} {row[f'{key}_msg_s']:.0f}/s = {row[f'{key}_ratio']:.2f}x "
                         f"({lo:.2f} to {hi:.2f})")
        lines.append(f"  {size}: " + "; ".join(parts))
        lines.append(f"  {size}, CPU per message, whole machine: Postfix alone "
                     f"{row['postfix_cpu_ms']:.2f} ms, with the milter (UNIX) "
                     f"{row['milter_unix_cpu_ms']:.2f} ms, of which the mailguard process "
                     f"{row['milter_unix_mailguard_cpu_ms']:.2f} ms; every check off "
                     f"{row['milter_floor_cpu_ms']:.2f} ms (mailguard "
                     f"{row['milter_floor_mailguard_cpu_ms']:.2f} ms); the disclaimer alone "
                     f"{row['milter_disclaimer_cpu_ms']:.2f} ms (mailguard "
                     f"{row['milter_disclaimer_mailguard_cpu_ms']:.2f} ms); → relay "
                     f"{row['relay_cpu_ms']:.2f} ms"
                     + (f"; OpenDKIM {row['milter_opendkim_cpu_ms']:.2f} ms"
                        if "milter_opendkim_cpu_ms" in row else ""))
    return "\n".join(lines)
