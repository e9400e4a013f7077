"""`mailguard doctor` against real parts: the upstream it dials, a DNS server on loopback that
holds (or lacks) the DKIM and SPF records, and the config's sources."""

from __future__ import annotations

import pytest
import trustme
from conftest import base_config, free_port, run, toml_dump
from dnsserver import DnsServer

from mailguard import config
from mailguard.commands import doctor
from mailguard.delivery import dkim


@pytest.fixture
def signing(tmp_path):
    pem, value = dkim.keygen("ed25519")
    (tmp_path / "dkim.pem").write_bytes(pem)
    return value


def dkim_config(tmp_path) -> dict:
    return {"dkim": {"domains": {"example.sch.uk": {"selector": "mg1",
                                                    "key": str(tmp_path / "dkim.pem")}}}}


def test_a_sound_setup_has_nothing_to_fix(make_gateway, sink, tmp_path, signing):
    gw = make_gateway(dkim_config(tmp_path) | {"sources": {
        "mx": {"type": "network", "networks": ["192.0.2.25/32"]}}}, start=False)
    del gw.config["server"]["trusted_networks"]
    gw.write_config()
    records = {"mg1._domainkey.example.sch.uk": [signing],
               "example.sch.uk": ["v=spf1 ip4:192.0.2.1 -all", "google-site-verification=x"],
               "second.sch.uk": ["v=spf1 ip4:192.0.2.1 -all"]}
    with DnsServer(records) as dns:
        out = gw.cli("doctor", "--dns", dns.address)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok    DKIM mg1._domainkey.example.sch.uk publishes mailguard's signing key" in out.stdout
    assert f"ok    upstream smtp://127.0.0.1:{sink.port} answers" in out.stdout
    assert "ok    mx (network): connections from 192.0.2.25/32 relay by address." in out.stdout
    assert out.stdout.rstrip().endswith("nothing to fix")


def test_what_is_wrong_is_said_with_the_fix(make_gateway, tmp_path, signing):
    _, other = dkim.keygen("ed25519")
    gw = make_gateway(dkim_config(tmp_path), start=False,
                      upstream=f"smtp://127.0.0.1:{free_port()}")   # nothing listens there
    records = {"mg1._domainkey.example.sch.uk": [other],
               "example.sch.uk": ["v=spf1 include:a.example -all", "v=spf1 -all"]}
    with DnsServer(records) as dns:
        out = gw.cli("doctor", "--dns", dns.address)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(line.startswith("fix   DKIM mg1._domainkey.example.sch.uk: the record is not "
                               f"this key; publish: mg1._domainkey.example.sch.uk. IN TXT ( \"{signing}")
               for line in lines), out.stdout
    assert "fix   SPF example.sch.uk: 2 SPF records; publish exactly one" in lines
    assert "fix   SPF second.sch.uk: the name does not exist in DNS (NXDOMAIN)" in lines
    assert any(line.startswith("fix   upstream smtp://127.0.0.1:") and "cannot reach it" in line
               for line in lines)
    assert any(line.startswith("fix   server.trusted_networks is deprecated") for line in lines)
    assert out.stdout.rstrip().endswith("5 to fix")


def test_microsoft_365_return_hop_needs_our_certificate_and_spf(tmp_path):
    ca = trustme.CA()
    ca.issue_cert("relay.example.sch.uk").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "tls.pem"))
    cfg = base_config(tmp_path / "var", "smtp+starttls://example-sch-uk.mail.protection.outlook.com:25")
    del cfg["server"]["trusted_networks"]
    cfg["server"].update({"tls_cert": str(tmp_path / "tls.pem"), "tls_key": str(tmp_path / "tls.pem")})
    cfg["sources"] = {"m365": {"type": "microsoft365",
                               "tenant_ids": ["6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b"]}}
    (tmp_path / "m.toml").write_text(toml_dump(cfg))
    settings = config.load(tmp_path / "m.toml")
    said = doctor.sources(settings) + doctor.tls(settings)
    fixes = [text for level, text in said if level == "fix"]
    assert any(t.startswith("upstream.tls_cert: Microsoft 365's inbound connector") for t in fixes)
    assert any("is for relay.example.sch.uk, not server.hostname mailguard.test" in t
               for t in fixes)
    notes = [text for level, text in said if level == "note"]
    assert any("a transport rule's secret header adds proof" in t for t in notes)
    with DnsServer({"example.sch.uk": ["v=spf1 ip4:192.0.2.1 -all"]}) as dns:
        found = doctor.dns_records(settings, doctor._resolver(dns.address))
    assert ("fix", 'SPF example.sch.uk: "v=spf1 ip4:192.0.2.1 -all" lacks '
                   "include:spf.protection.outlook.com, yet mail leaves through "
                   "example-sch-uk.mail.protection.outlook.com") in found
    assert run("doctor", "--help").returncode == 0


def test_google_mail_sent_back_to_google_is_called_a_loop(tmp_path):
    ca = trustme.CA()
    ca.issue_cert("mailguard.test").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "tls.pem"))
    secret = tmp_path / "secret"
    secret.write_text("s" * 32)
    secret.chmod(0o600)
    cfg = base_config(tmp_path / "var", "smtp+starttls://smtp-relay.gmail.com:587")
    del cfg["server"]["trusted_networks"]
    cfg["server"].update({"tls_cert": str(tmp_path / "tls.pem"), "tls_key": str(tmp_path / "tls.pem")})
    cfg["sources"] = {"gw": {"type": "google", "secret_header": "X-Route",
                             "secret_file": str(secret)}}
    (tmp_path / "m.toml").write_text(toml_dump(cfg))
    said = doctor.sources(config.load(tmp_path / "m.toml"))
    assert any(level == "fix" and "returns to mailguard" in text for level, text in said)
    assert all("s" * 32 not in text for _, text in said)
