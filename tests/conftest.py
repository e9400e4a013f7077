"""Fixtures: a recording aiosmtpd upstream (`sink`), mailguard as a real process (`gateway`).

Tests talk SMTP over loopback: smtplib client → mailguard → aiosmtpd sink.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import signal
import smtplib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).parent))
from postfix import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class SinkHandler:
    """Records what it accepts; recipients and replies can be set to refuse, as a real MTA would."""

    messages: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient → reply
    data_reply: str | None = None
    delay: float = 0.0
    commands: list[str] = field(default_factory=list)
    connections: int = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        self.commands.append(f"MAIL {address} {' '.join(options)}".strip())
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        self.commands.append(f"RCPT {address}")
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        if self.delay:
            await asyncio.sleep(self.delay)
        if self.data_reply:
            return self.data_reply
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content))
        return f"250 2.0.0 Ok: queued as SINK{len(self.messages)}"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"sink has {len(self.messages)}, wanted {count}"
        return self.messages


class Sink:
    def __init__(self, port: int | None = None) -> None:
        self.handler = SinkHandler()
        self.port = port or free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=True, data_size_limit=None)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        return self.handler.wait_for(count, timeout)


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    s.start()
    yield s
    s.stop()


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


def toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def toml_dump(data: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for our configs: scalars and lists first, then sub-tables."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    out = ""
    if lines:
        out += (f"[{prefix}]\n" if prefix else "") + "\n".join(lines) + "\n\n"
    for key, value in tables:
        name = toml_key(key)
        out += toml_dump(value, f"{prefix}.{name}" if prefix else name)
    return out


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The `mailguard` command, as IT would run it."""
    return subprocess.run([sys.executable, "-m", "mailguard", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def run_together(*commands: tuple[str, ...], env: dict[str, str] | None = None,
                 ) -> list[subprocess.CompletedProcess[str]]:
    """Several `mailguard` commands at once (each its own process, each given `env` as its
    environment when set), their results in the order of the list."""
    procs = [subprocess.Popen([sys.executable, "-m", "mailguard", *args], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for args in commands]
    done = []
    try:
        for args, proc in zip(commands, procs, strict=True):
            out, err = proc.communicate(timeout=60)
            done.append(subprocess.CompletedProcess([*args], proc.returncode, out, err))
    finally:   # a command that hangs is stopped, and so are the others
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


def base_config(data_dir: Path, upstream: str) -> dict[str, Any]:
    return {
        "server": {"listen": f"127.0.0.1:{free_port()}", "hostname": "mailguard.test",
                   "trusted_networks": ["127.0.0.0/8"], "shutdown_timeout": 10},
        "upstream": {"url": upstream, "timeout": 10},
        "organisation": {"name": "Test Academy Trust",
                         "domains": ["example.sch.uk", "second.sch.uk"]},
        "storage": {"data_dir": str(data_dir)},
        "web": {"listen": f"127.0.0.1:{free_port()}"},
        "checks": {"identity": {"action": "reject"}},
    }


def deep_update(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


class Gateway:
    """mailguard running as its own process, as `make run` starts it."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.folder = folder
        self.config = config
        self.config_path = folder / "mailguard.toml"
        self.data_dir = Path(config["storage"]["data_dir"])
        self.log_path = folder / "mailguard.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_config()

    @property
    def port(self) -> int:
        return int(self.config["server"]["listen"].rpartition(":")[2])

    @property
    def web_port(self) -> int:
        return int(self.config["web"]["listen"].rpartition(":")[2])

    def write_config(self, text: str | None = None) -> None:
        self.config_path.write_text(text if text is not None else toml_dump(self.config))

    command = "serve"   # `mailguard milter` for tests/milter.py's MilterGateway

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailguard", self.command, "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            self.wait_until_serving()
        except TimeoutError:
            self.stop()
            raise AssertionError(f"mailguard {self.command} did not start:\n"
                                 + self.log()) from None

    def wait_until_serving(self) -> None:
        wait_for_port(self.port)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailguard", *args[:1], "--config", str(self.config_path),
             *args[1:]], capture_output=True, text=True, input=input, cwd=ROOT, timeout=60)

    def client(self) -> smtplib.SMTP:
        c = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        c.ehlo("client.example.sch.uk")
        return c

    def send(self, raw: bytes, sender: str = "teacher@example.sch.uk",
             recipients: tuple[str, ...] = ("parent@gmail.com",)) -> tuple[int, bytes]:
        """One transaction; returns the reply to DATA (or to the first refused command)."""
        with self.client() as c:
            code, text = c.mail(sender)
            if code != 250:
                return code, text
            for r in recipients:
                rc, rt = c.rcpt(r)
                if rc >= 400 and len(recipients) == 1:
                    return rc, rt
            return c.data(raw)

    def held(self) -> list[dict[str, Any]]:
        """Every held message's record as `quarantine show --json` prints it, findings too."""
        listed = self.cli("quarantine", "list", "--json").stdout.splitlines()
        return [json.loads(self.cli("quarantine", "show", json.loads(line)["id"],
                                    "--json").stdout) for line in listed if line]

    def events(self, at_least: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The event log, once it has caught up. It commits in 200 ms batches, so it is read
        until it holds `at_least` events and a read a batch later agrees (a loaded machine
        commits late). Read from the store as `mailguard events --json` prints it, without a
        process per read; test_cli runs the command itself."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.read_events()
            if len(now) >= at_least or time.monotonic() > deadline:
                time.sleep(0.25)
                again = self.read_events()
                if again == now or time.monotonic() > deadline:
                    return again
            else:
                time.sleep(0.05)

    def read_events(self) -> list[dict[str, Any]]:
        from mailguard.store.events import dumps, from_row

        try:
            rows = self.sql("SELECT * FROM events WHERE ts >= ? ORDER BY ts",
                            (time.time() - 86400,), read_only=True)
        except (sqlite3.OperationalError, LookupError):   # no tables (or no store) yet
            return []
        return [json.loads(dumps(from_row(r))) for r in rows]

    def holds_content(self, qid: str) -> bool:
        """Whether the store still keeps the held message's (sealed) content: its file in the
        data folder, or its row in the shared store."""
        if self.config["storage"].get("url", "sqlite:") != "sqlite:":
            return bool(self.sql("SELECT 1 FROM held_files WHERE name = ?", (f"{qid}.eml",)))
        return (self.data_dir / "quarantine" / f"{qid}.eml").exists()

    def held_bytes(self, qid: str) -> bytes:
        """A held message's content as the store keeps it (sealed): its file in the data
        folder, or its row in the shared store."""
        if self.config["storage"].get("url", "sqlite:") == "sqlite:":
            return (self.data_dir / "quarantine" / f"{qid}.eml").read_bytes()
        [(content,)] = self.sql("SELECT data FROM held_files WHERE name = ?", (f"{qid}.eml",))
        return bytes(content)

    def stored_bytes(self) -> bytes:
        """Everything the gateway's store keeps, to look for what it must never keep: the
        SQLite files byte for byte (free pages too), or every row of every shared table."""
        if self.config["storage"].get("url", "sqlite:") == "sqlite:":
            return b"".join(p.read_bytes() for p in self.data_dir.glob("*.db*"))
        tables = self.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return b"\n".join(bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode()
                          for (t,) in tables for row in self.sql(f'SELECT * FROM "{t}"')
                          for v in row)

    def sql(self, query: str, args: tuple[Any, ...] = (), *, read_only: bool = False
            ) -> list[Any]:
        """One statement on this gateway's store, whichever engine it is (a test looking at
        or changing what the gateway keeps); rows by position and by name."""
        storage = self.config["storage"]
        if storage.get("url", "sqlite:") != "sqlite:":
            import psycopg

            from mailguard.store.postgres import _args, _rows, translate

            password = Path(storage["password_file"]).read_text().strip()
            with psycopg.connect(storage["url"], password=password,
                                 row_factory=_rows) as db:  # type: ignore[arg-type]
                try:
                    cur = db.execute(translate(query).encode(), _args(args))
                except psycopg.errors.UndefinedTable as e:
                    raise LookupError(str(e)) from None
                return cur.fetchall() if cur.description else []
        path = self.data_dir / "mailguard.db"
        if not path.exists():
            raise LookupError(f"{path} does not exist yet")
        where = f"file:{path}?mode=ro" if read_only else f"file:{path}"
        with contextlib.closing(sqlite3.connect(where, uri=True, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(query, args).fetchall()
            db.commit()
            return rows


# `MAILGUARD_TEST_STORE=postgresql` runs the gateways of a test on the shared store (a fresh
# database on the session's PostgreSQL server) instead of SQLite: `make test` runs every test
# that starts a gateway or a milter both ways (pytest_collection_modifyitems picks them).
STORE = os.environ.get("MAILGUARD_TEST_STORE", "sqlite")


def shared_storage(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The `[storage]` settings of a test's gateways: none (SQLite in the data folder), or a
    fresh database on the session's PostgreSQL server when the pass asks for it."""
    if STORE != "postgresql":
        return {}
    server = request.getfixturevalue("postgres")
    secret = tmp_path / "pg.password"
    if not secret.exists():
        secret.write_text(server.password + "\n")
        secret.chmod(0o600)
    return {"url": server.fresh_database(), "password_file": str(secret)}


@pytest.fixture
def make_gateway(tmp_path: Path, sink: Sink, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Gateways for a test: in this process (tests/inprocess.py) unless `process=True` asks
    for `mailguard serve` as its own process (signals, exit codes, its log, workers)."""
    from inprocess import LocalGateway

    started: list[Gateway] = []
    shared = shared_storage(request, tmp_path)

    def make(extra: dict[str, Any] | None = None, *, upstream: str | None = None,
             start: bool = True, process: bool = False) -> Gateway:
        config = base_config(tmp_path / "var", upstream or f"smtp://127.0.0.1:{sink.port}")
        config["storage"].update(shared)
        workers = (extra or {}).get("server", {}).get("workers", 1)
        kind = Gateway if process or workers > 1 else LocalGateway   # workers are processes
        gw = kind(tmp_path, deep_update(config, extra or {}))
        if start:
            gw.start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
def make_milter(tmp_path: Path, sink: Sink, request: pytest.FixtureRequest) -> Iterator[Any]:
    """`mailguard milter` processes, each inside its own private Postfix (tests/milter.py)
    that relays to the sink; `send` and `client` talk to that Postfix. With `postfix=False`
    the test itself is the MTA (tests/milterclient.py)."""
    from milter import MilterGateway

    started: list[Any] = []
    shared = shared_storage(request, tmp_path)

    def make(extra: dict[str, Any] | None = None, socket: Path | None = None,
             postfix: bool = True) -> Any:
        config = base_config(tmp_path / "var", f"smtp://127.0.0.1:{sink.port}")
        config["storage"].update(shared)
        config = deep_update(config, extra or {})
        gw = MilterGateway(tmp_path, config, sink.port, socket, postfix)
        started.append(gw)
        gw.start()
        return gw

    yield make
    for gw in started:
        gw.close()


@pytest.fixture
def gateway(make_gateway: Any) -> Any:
    return make_gateway()


def message(from_: str = "teacher@example.sch.uk", to: str = "parent@gmail.com",
            subject: str = "Trip on Friday", body: str = "Please bring a packed lunch.\r\n",
            extra_headers: str = "") -> bytes:
    return (f"From: {from_}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.sch.uk>\r\n"
            f"{extra_headers}\r\n{body}").encode()


def added_headers(relayed: bytes, original: bytes) -> bytes:
    """What mailguard put on top; asserts the rest is the original, byte for byte."""
    assert relayed.endswith(original), "the relayed message does not end with the original bytes"
    return relayed[: len(relayed) - len(original)]


# -- test tiers ------------------------------------------------------------------------------
# `make test` runs everything. `make test-fast` leaves out the tests that start processes (the
# gateway, the CLI, Postfix, clamd, a browser): a developer's loop in well under a minute.
_STARTS_PROCESSES = re.compile(
    r"subprocess|Popen|\.cli\(|(?<![\w.])run\(\s*[\"']|Gateway\(|make_gateway|sys\.executable"
    r"|postfix\.|\bPostfix\b|chromium|clamd|PostgresServer")


def _spawns(function: Any, depth: int = 2) -> bool:
    """Whether a function's source, or that of the test-suite functions it calls (two deep:
    helpers such as test_cli's `mailguard()` or filemaker's LibreOffice), starts a process."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    if _STARTS_PROCESSES.search(source):
        return True
    scope = vars(inspect.getmodule(function) or sys)
    called = []
    for owner, name in _CALLS.findall(source):
        target = getattr(scope.get(owner), name, None) if owner else scope.get(name)
        if inspect.isfunction(target) and target is not function and str(
                ROOT / "tests") in (inspect.getsourcefile(target) or ""):
            called.append(target)
    return depth > 0 and any(_spawns(f, depth - 1) for f in set(called))


_CALLS = re.compile(r"(?<![\w.])(?:([A-Za-z_]\w*)\.)?([A-Za-z_]\w*)\(")


def _starts_processes(item: pytest.Item) -> bool:
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        functions += [d.func for d in defs if not d.func.__module__.startswith("_pytest")]
    return any(_spawns(f) for f in functions if f is not None)


# The fixtures whose gateways keep state in the store: the PostgreSQL pass runs every test
# that starts one (and the store's own tests, which run both engines themselves).
_STORE_FIXTURES = {"make_gateway", "make_milter"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _starts_processes(item):
            item.add_marker(pytest.mark.process)
    if STORE == "postgresql":
        kept = [i for i in items if _STORE_FIXTURES & set(getattr(i, "fixturenames", ()))
                and not i.get_closest_marker("sqlite_only")
                and not i.get_closest_marker("own_store")]
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for the session (tests/pgserver.py), stopped at the end."""
    from pgserver import PostgresServer, binaries

    if binaries() is None:
        pytest.skip("PostgreSQL is not installed (scripts/system-deps.sh test installs it)")
    server = PostgresServer()
    yield server
    server.close()
