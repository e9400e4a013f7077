"""Held mail at rest: sealed with AES-256-GCM under a key from a file or the environment, never
in the store; a wrong or missing key is named, never a crash; older plain files still read."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, base_config, message, toml_dump

from mailguard import config
from mailguard.store.sealing import Sealer, SealError

KEY = base64.b64encode(bytes(range(32))).decode()


def held(gw) -> str:
    code, text = gw.send(message(from_="head@gmail.com", subject="Amelia's review"))
    assert code == 250, text
    return re.search(rb"reference (\w+)", text).group(1).decode()


def test_the_key_from_the_environment_is_used_and_never_stored(make_gateway, sink, monkeypatch):
    monkeypatch.setenv("MG_TEST_QKEY", KEY)
    gw = make_gateway({"checks": {"identity": {"action": "quarantine"}},
                       "storage": {"quarantine_key_env": "MG_TEST_QKEY"}})
    qid = held(gw)
    sealed = gw.held_bytes(qid)
    assert Sealer(base64.b64decode(KEY)).open(sealed, qid) == message(
        from_="head@gmail.com", subject="Amelia's review")
    assert not (gw.data_dir / "quarantine.key").exists()
    store = gw.stored_bytes()
    assert KEY.encode() not in store and bytes(range(32)) not in store
    assert b"Amelia" not in store                                  # the subject is sealed too
    [(subject,)] = gw.sql("SELECT subject FROM quarantine")
    assert subject.startswith("sealed:")
    out = gw.cli("check-config")
    assert "sealed (AES-256-GCM) with the key from environment variable MG_TEST_QKEY" in out.stdout


@pytest.mark.sqlite_only   # the key in the data folder (test_cluster: a node with another key)
def test_a_missing_or_wrong_key_is_a_clear_error(make_gateway, sink, tmp_path, monkeypatch):
    gw = make_gateway({"checks": {"identity": {"action": "quarantine"}}})
    qid = held(gw)
    assert (gw.data_dir / "quarantine.key").stat().st_mode & 0o777 == 0o600
    assert "warning: the quarantine key is in the data folder" in gw.cli("check-config").stdout
    gw.stop()
    (gw.data_dir / "quarantine.key").write_text(KEY + "\n")        # a different key
    out = gw.cli("quarantine", "show", qid, "--raw")
    assert out.returncode == 1 and "sealed with another key" in out.stderr
    assert "restore the quarantine key" in out.stderr and "Traceback" not in out.stderr
    gw.config["storage"]["quarantine_key_env"] = "MG_TEST_UNSET"
    gw.write_config()
    monkeypatch.delenv("MG_TEST_UNSET", raising=False)
    bad = gw.cli("check-config")
    assert bad.returncode == 2
    assert "storage.quarantine_key_env: the environment variable MG_TEST_UNSET is not set" in bad.stderr


@pytest.mark.parametrize("content, mode, says", [
    ("c2hvcnQ=", 0o600, "holds 5 bytes; a quarantine key is 32 bytes"),
    ("not base64!", 0o600, "is not base64"),
    (KEY, 0o644, "can be read by other users: chmod 600"),
])
def test_bad_key_files_are_config_errors(tmp_path, content, mode, says):
    key = tmp_path / "q.key"
    key.write_text(content)
    os.chmod(key, mode)
    data = base_config(tmp_path / "var", "maildir:var/outbox")
    data["storage"]["quarantine_key_file"] = str(key)
    path = tmp_path / "m.toml"
    path.write_text(toml_dump(data))
    with pytest.raises(config.ConfigError) as e:
        config.load(path)
    assert f"storage.quarantine_key_file: {key} {says}" in str(e.value)
    run = subprocess.run([sys.executable, "-m", "mailguard", "check-config", "--config", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and says in run.stderr


def test_sealed_content_is_bound_to_its_message():
    sealer = Sealer(bytes(32))
    blob = sealer.seal(b"From: a\r\n\r\nhello\r\n", "AAA")
    assert sealer.open(blob, "AAA") == b"From: a\r\n\r\nhello\r\n"
    with pytest.raises(SealError, match="belongs to another message"):
        sealer.open(blob, "BBB")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SealError, match="altered"):
        sealer.open(tampered, "AAA")
    assert sealer.open(b"From: held before sealing\r\n", "AAA") == b"From: held before sealing\r\n"


def test_the_key_can_be_rotated_without_losing_held_mail(make_gateway, sink, tmp_path):
    """New key in, old key listed as old; new holds use the new key, old ones still open;
    `quarantine rekey` re-seals the rest; then the old key can go."""
    old_key, new_key = tmp_path / "old.key", tmp_path / "new.key"
    for path, raw in ((old_key, bytes(range(32))), (new_key, bytes(range(32, 64)))):
        path.write_text(base64.b64encode(raw).decode() + "\n")
        path.chmod(0o600)
    gw = make_gateway({"checks": {"identity": {"action": "quarantine"}},
                       "storage": {"quarantine_key_file": str(old_key)}})
    first = held(gw)
    gw.stop()
    gw.config["storage"].update({"quarantine_key_file": str(new_key),
                                 "quarantine_old_key_files": [str(old_key)]})
    gw.write_config()
    gw.start()
    second = held(gw)
    assert Sealer(bytes(range(32))).current(gw.held_bytes(first))
    assert Sealer(bytes(range(32, 64))).current(gw.held_bytes(second))
    for qid in (first, second):
        out = gw.cli("quarantine", "show", qid, "--raw")
        assert out.returncode == 0 and "Amelia's review" in out.stdout
    out = gw.cli("quarantine", "rekey")
    assert out.returncode == 0, out.stderr
    assert "re-sealed under the current key: 1 messages, 1 subjects" in out.stdout
    assert gw.cli("quarantine", "rekey").stdout.startswith(
        "re-sealed under the current key: 0 messages, 0 subjects")
    gw.stop()
    del gw.config["storage"]["quarantine_old_key_files"]
    gw.write_config()
    gw.start()
    for qid in (first, second):
        out = gw.cli("quarantine", "show", qid, "--json")
        assert out.returncode == 0 and json.loads(out.stdout)["subject"] == "Amelia's review"
    assert "rekey" in gw.cli("quarantine", "show", first).stdout   # the audit trail says so


def test_an_unreadable_old_key_is_a_config_error(tmp_path):
    cfg = base_config(tmp_path / "var", "smtp://127.0.0.1:25")
    cfg["storage"]["quarantine_old_key_files"] = [str(tmp_path / "gone.key")]
    (tmp_path / "m.toml").write_text(toml_dump(cfg))
    with pytest.raises(config.ConfigError, match=r"storage.quarantine_old_key_files: .*gone.key: "
                                                 r"cannot read it"):
        config.load(tmp_path / "m.toml")
