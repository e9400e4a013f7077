"""A data folder on a disk that is full: the gateway defers mail (451, nothing lost), and the
CLI and the review desk say what is wrong and what to do, never with a traceback.

The disk is a real 2 MB tmpfs, filled to the last byte, so SQLite fails as it does in the
field ("disk I/O error" or "database or disk is full"). Mounting needs root, as CI has."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, message
from desk import PASSWORD, Reviewer, desk_app

from mailguard.store import db as store_db

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small disk needs root"),
              pytest.mark.sqlite_only]   # the data folder's disk (test_cluster: a store away)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    with (disk / "ballast").open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    for n in range(1000):   # the last few blocks and inodes too
        try:
            (disk / f"b{n}").write_bytes(b"\0" * 512)
        except OSError:
            break


def run(gw, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailguard", *words, "--config",
                           str(gw.config_path)], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def says_full(out: subprocess.CompletedProcess[str], disk: Path) -> bool:
    assert "Traceback" not in out.stderr, out.stderr
    return (out.returncode == 1 and f"the data folder {disk / 'var'} is full" in out.stderr
            and "Free space on that disk" in out.stderr)


def test_every_command_says_the_disk_is_full_and_what_to_do(make_gateway, small_disk, sink):
    gw = make_gateway({"storage": {"data_dir": str(small_disk / "var")},
                       "checks": {"identity": {"action": "quarantine"}}})
    assert gw.send(message())[0] == 250          # a working gateway first
    held = gw.send(message(from_="head@gmail.com"))[1].decode().split("reference ")[1][:26]
    held = held.split(")")[0]
    out = gw.cli("users", "add", "dpo", "--role", "dpo", "--password-stdin", input=PASSWORD)
    assert out.returncode == 0, out.stderr
    fill(small_disk)

    code, text = gw.send(message(from_="head@gmail.com"))   # would be held: cannot be stored
    assert code == 451 and b"try again later" in text
    # While the gateway keeps the store open, reading still works; anything that writes
    # (every view of held mail is audited) says why it cannot.
    assert run(gw, "events").returncode == 0
    writing = [("quarantine", "list"), ("quarantine", "show", held),
               ("quarantine", "release", held), ("quarantine", "delete", held)]
    for words in writing:
        assert says_full(run(gw, *words), small_disk), words
    gw.stop()
    # With the gateway stopped, a command that must write says so, and one that only reads
    # answers; none hangs on the store's thread or prints a trace.
    for words in [*writing, ("events",), ("purge",), ("users", "list"), ("wordlists", "stats")]:
        out = run(gw, *words)
        assert out.returncode == 0 or says_full(out, small_disk), (words, out.stderr)
    for words in writing:
        assert says_full(run(gw, *words), small_disk), words


async def test_the_desk_says_the_disk_is_full(make_gateway, small_disk):
    gw = make_gateway({"storage": {"data_dir": str(small_disk / "var")}}, process=True)
    out = gw.cli("users", "add", "dpo", "--role", "dpo", "--password-stdin", input=PASSWORD)
    assert out.returncode == 0, out.stderr
    gw.stop()
    fill(small_disk)
    app = desk_app(gw)
    reviewer = Reviewer(app)
    page = await reviewer.http.get("/login")
    if page.status_code == 200:   # the sign-in page needs no store; signing in does
        page = await reviewer.sign_in("dpo", PASSWORD)
    assert page.status_code == 503, page.text[:500]
    assert "is full" in page.text and "Free space on that disk" in page.text
    assert "Traceback" not in page.text


def test_a_store_problem_is_put_in_words():
    import sqlite3

    data = Path("/var/lib/mailguard")
    full = store_db.problem(sqlite3.OperationalError("database or disk is full"), data)
    assert full and "is full" in full and "451" in full
    locked = store_db.problem(sqlite3.OperationalError("database is locked"), data)
    assert locked and "Try again in a moment" in locked
    elsewhere = store_db.problem(FileNotFoundError(2, "No such file or directory", "/tmp/x.eml"),
                                 data)
    assert elsewhere == "/tmp/x.eml: No such file or directory"
    assert store_db.problem(ValueError("a bug"), data) is None
