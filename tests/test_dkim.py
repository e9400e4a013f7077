"""DKIM: keys from `mailguard dkim keygen`, signatures that dkimpy verifies after every rewrite."""

from __future__ import annotations

import re
import stat
import subprocess
import sys

import dkim as dkimpy
import pytest
from conftest import ROOT, base_config, message, toml_dump

from mailguard import config


def keygen(tmp_path, domain: str, selector: str, algorithm: str = "rsa") -> str:
    out = subprocess.run([sys.executable, "-m", "mailguard", "dkim", "keygen", "--domain", domain,
                          "--selector", selector, "--algorithm", algorithm, "--out",
                          str(tmp_path / "dkim")], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    record = re.search(r"IN TXT \( (.*) \)", out.stdout).group(1)
    return "".join(re.findall(r'"([^"]*)"', record))


def verify(data: bytes, records: dict[str, str]) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()

    return dkimpy.verify(data, dnsfunc=dns)


def test_keygen_writes_a_private_key_and_prints_the_record(tmp_path):
    value = keygen(tmp_path, "example.sch.uk", "mg2026")
    key = tmp_path / "dkim" / "example.sch.uk.mg2026.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert value.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")  # a 2048-bit SubjectPublicKeyInfo
    again = subprocess.run([sys.executable, "-m", "mailguard", "dkim", "keygen", "--domain",
                            "example.sch.uk", "--selector", "mg2026", "--out",
                            str(tmp_path / "dkim")], capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.fixture
def signing_gateway(make_gateway, tmp_path):
    records = {
        "mg._domainkey.example.sch.uk": keygen(tmp_path, "example.sch.uk", "mg"),
        "ed._domainkey.second.sch.uk": keygen(tmp_path, "second.sch.uk", "ed", "ed25519"),
    }
    gw = make_gateway({
        "dkim": {"domains": {
            "example.sch.uk": {"selector": "mg", "key": str(tmp_path / "dkim/example.sch.uk.mg.key")},
            "second.sch.uk": {"selector": "ed", "key": str(tmp_path / "dkim/second.sch.uk.ed.key")},
        }},
        "checks": {"disclaimer": {"action": "log", "folder": str(ROOT / "config/disclaimers")}},
    })
    return gw, records


def test_rewritten_mail_is_signed_and_verifies(signing_gateway, sink):
    gw, records = signing_gateway
    assert gw.send(message())[0] == 250
    data = sink.wait_for(1)[0].data
    assert b"monitored" in data  # the disclaimer went in before signing
    assert b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=example.sch.uk" in data
    assert verify(data, records)
    # The trace headers sit above the signature; the signature covers From twice (oversigned).
    assert data.index(b"Received:") < data.index(b"DKIM-Signature:")
    h = re.search(rb"h=([^;]+);", re.sub(rb"\r\n\s+", b"", data)).group(1)
    assert [x.strip() for x in h.lower().split(b":")].count(b"from") == 2
    forged = data.replace(b"From: teacher@", b"From: Head <head@example.sch.uk>\r\nFrom: teacher@")
    assert not verify(forged, records)
    assert not verify(data.replace(b"packed lunch", b"packed lunches"), records)


def test_ed25519_and_parent_domain_keys(signing_gateway, sink):
    gw, records = signing_gateway
    assert gw.send(message(from_="office@second.sch.uk"), sender="office@second.sch.uk")[0] == 250
    assert gw.send(message(from_="staff@mail.example.sch.uk"),
                   sender="staff@mail.example.sch.uk")[0] == 250
    first, second = sink.wait_for(2)
    assert b"a=ed25519-sha256" in first.data and verify(first.data, records)
    assert b"d=example.sch.uk" in second.data and verify(second.data, records)


def test_unchanged_mail_is_signed_too(make_gateway, sink, tmp_path):
    records = {"mg._domainkey.example.sch.uk": keygen(tmp_path, "example.sch.uk", "mg")}
    gw = make_gateway({"dkim": {"domains": {"example.sch.uk": {
        "selector": "mg", "key": str(tmp_path / "dkim/example.sch.uk.mg.key")}}}})
    original = message()
    assert gw.send(original)[0] == 250
    data = sink.wait_for(1)[0].data
    assert data.endswith(original) and verify(data, records)


def test_mail_from_a_domain_without_a_key_is_not_signed(signing_gateway, sink):
    gw, _ = signing_gateway
    gw.config["organisation"]["domains"].append("third.sch.uk")
    gw.write_config()
    gw.restart()
    assert gw.send(message(from_="a@third.sch.uk"), sender="a@third.sch.uk")[0] == 250
    assert b"DKIM-Signature" not in sink.wait_for(1)[0].data


def test_bad_key_is_a_config_error(tmp_path):
    (tmp_path / "bad.key").write_text("not a key")
    data = base_config(tmp_path / "var", "maildir:var/outbox")
    data["dkim"] = {"domains": {"example.sch.uk": {"selector": "s", "key": str(tmp_path / "bad.key")}}}
    path = tmp_path / "c.toml"
    path.write_text(toml_dump(data))
    with pytest.raises(config.ConfigError, match=r'c\.toml: dkim\.domains\.example\.sch\.uk\.key: .* is not '
                                                 r"a usable private key"):
        config.load(path)
