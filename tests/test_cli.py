"""The offline commands IT uses: check a saved message, make an AUTH users-file line."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, message

from mailguard.auth import UserDatabase


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
