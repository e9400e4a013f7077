"""The offline commands IT uses: check a saved message, make an AUTH users-file line."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, message, run_together

from mailguard.server.auth import UserDatabase


def mailguard(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailguard", *args], capture_output=True,
                          text=True, cwd=ROOT, input=input, timeout=60)


def test_check_says_what_would_happen_to_a_saved_message(tmp_path):
    good, bad = tmp_path / "good.eml", tmp_path / "bad.eml"
    good.write_bytes(message(from_="teacher@example.sch.uk").replace(b"\r\n", b"\n"))
    bad.write_bytes(message(from_="teacher@gmail.com"))
    out = mailguard("check", "--config", "config/mailguard.toml", str(good), "--json")
    result = json.loads(out.stdout)
    assert result["verdict"] == "deliver"
    assert [f["rule"] for f in result["findings"]] == ["disclaimer.added"]
    out = mailguard("check", "--config", "config/mailguard.toml", str(bad))
    assert out.stdout.startswith("verdict: reject")
    assert "identity.foreign_from (reject)" in out.stdout


def test_passwd_makes_a_line_the_server_accepts(tmp_path):
    out = mailguard("passwd", "office@example.sch.uk", input="tr0ub4dor&3\n")
    assert out.returncode == 0, out.stderr
    users = tmp_path / "users"
    users.write_text(out.stdout)
    db = UserDatabase.load(users)
    assert db.verify("office@example.sch.uk", "tr0ub4dor&3")
    assert db.verify("Office@Example.sch.uk", "tr0ub4dor&3")  # names are case-insensitive
    assert not db.verify("office@example.sch.uk", "tr0ub4dor&4")


def test_wordlists_test_shows_each_match_and_how_it_was_found(tmp_path):
    out = mailguard("wordlists", "--config", "config/mailguard.toml", "test",
                    "Shitterton is nice but you are a tw4t", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["entry"], r["how"], r["matched"]) for r in rows] == [("twat", "leet", "tw4t")]
    eml = tmp_path / "fwd.eml"
    eml.write_text("From: t@example.sch.uk\nSubject: fwd\n\nSee below.\n\n"
                   "---------- Forwarded message ---------\nI know where you live\n")
    out = mailguard("wordlists", "--config", "config/mailguard.toml", "test", "--file", str(eml),
                    "--json")
    [row] = json.loads(out.stdout)
    assert (row["where"], row["category"]) == ("quoted", "threats")


COMMANDS = [("quarantine", "list"), ("quarantine", "show", "NOSUCH"), ("events",),
            ("users", "list"), ("wordlists", "stats"), ("purge",), ("check-config",)]


def test_config_is_taken_before_or_after_every_command_and_from_the_environment(tmp_path):
    """Each command reads the file it is given, wherever --config stands: a broken file is
    named (exit 2) by every one, so none of them quietly read the default instead."""
    import os

    broken = tmp_path / "broken.toml"
    broken.write_text("[organisation]\nname = \"T\"\ndomains = [\"example.sch.uk\"]\n"
                      "[server]\nlisten = 25\n")
    # Each way of giving the file, for every command, all run side by side.
    afters = run_together(*[(*words, "--config", str(broken)) for words in COMMANDS])
    befores = run_together(*[("--config", str(broken), *words) for words in COMMANDS])
    envs = run_together(*COMMANDS, env={**os.environ, "MAILGUARD_CONFIG": str(broken)})
    for words, after, before, env in zip(COMMANDS, afters, befores, envs, strict=True):
        for how, out in (("after", after), ("before", before), ("environment", env)):
            assert out.returncode == 2, (words, how, out.stderr)
            assert f"{broken}: server.listen:" in out.stderr, (words, how, out.stderr)
            assert "Traceback" not in out.stderr
    # The nearest --config wins over the environment's.
    good = tmp_path / "good.toml"
    good.write_text(f'[storage]\ndata_dir = "{tmp_path / "var"}"\n'
                    '[organisation]\nname = "T"\ndomains = ["example.sch.uk"]\n')
    out = subprocess.run([sys.executable, "-m", "mailguard", "quarantine", "list", "--config",
                          str(good)], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "MAILGUARD_CONFIG": str(broken)})
    assert out.returncode == 0, out.stderr
