"""Config errors name the file, the key and the problem, and exit 2 — for check-config and serve."""

from __future__ import annotations

import pytest
from conftest import ROOT, base_config, run, run_together, toml_dump

from mailguard import config
from mailguard.sources import ranges


def test_shipped_config_is_valid_and_relays_to_a_local_maildir():
    out = run("check-config", "--config", "config/mailguard.toml")
    assert out.returncode == 0, out.stderr
    settings = config.load(ROOT / "config/mailguard.toml")
    assert settings.upstream.scheme == "maildir"
    assert settings.upstream.path == ROOT / "var/outbox"
    assert settings.server.max_message_size == 35 * 1024 * 1024


@pytest.mark.parametrize(("change", "expected"), [
    ({"server": {"listen": "nowhere"}}, 'server.listen: must be "host:port"'),
    ({"server": {"max_message_size": "lots"}}, "server.max_message_size: must be a size"),
    ({"server": {"trusted_networks": ["10.0.0.300/8"]}},
     "server.trusted_networks: '10.0.0.300/8' is not an address or network"),
    ({"server": {"max_recipients": 0}}, "server.max_recipients: must be at least 1"),
    # Cloud ranges every tenant shares: trusting one is trusting every other tenant too.
    ({"server": {"trusted_networks": ["40.107.0.0/16"]}},
     "server.trusted_networks: 40.107.0.0/16 overlaps 40.107.0.0/16, an outbound range of "
     "Microsoft 365 (Exchange Online) that every one of its tenants shares"),
    ({"server": {"trusted_networks": ["127.0.0.0/8", "2a01:111:f400::1"]}},
     "server.trusted_networks: 2a01:111:f400::1/128 overlaps 2a01:111:f400::/48, an outbound "
     "range of Microsoft 365"),
    ({"server": {"trusted_networks": ["209.85.220.0/24"]}},
     "server.trusted_networks: 209.85.220.0/24 overlaps 209.85.128.0/17, an outbound range of "
     "Google Workspace (Gmail)"),
    ({"server": {"trusted_networks": ["0.0.0.0/0"]}}, "server.trusted_networks: 0.0.0.0/0 "
     "overlaps 40.92.0.0/15"),
    ({"server": {"listn": "x"}}, "server.listn: unknown key"),
    ({"server": {"tls_cert": "/nonexistent.pem"}}, "server.tls_cert: file /nonexistent.pem"),
    ({"upstream": {"url": "http://x"}}, 'upstream.url: must start with "maildir:"'),
    # The return hop to a cloud service is always over verified TLS.
    ({"upstream": {"url": "smtp://trust-org.mail.protection.outlook.com:25"}},
     "upstream.url: trust-org.mail.protection.outlook.com is Microsoft 365, which mailguard "
     "reaches only over TLS: use smtp+starttls://trust-org.mail.protection.outlook.com:25"),
    ({"upstream": {"url": "smtp+starttls://smtp-relay.gmail.com:587", "tls_verify": False}},
     "upstream.tls_verify: smtp-relay.gmail.com is Google Workspace: its certificate is always "
     "verified"),
    ({"upstream": {"url": "smtp://relay:25", "username": "u", "password": "p"}},
     "upstream.username: refusing to send a password in clear"),
    ({"organisation": {"domains": []}}, "organisation.domains: list at least one"),
    ({"organisation": {"domains": ["not a domain"]}}, "organisation.domains: 'not a domain'"),
    ({"checks": {"identity": {"action": "bounce"}}},
     "checks.identity.action: must be one of off, log, notify, quarantine, reject"),
    ({"checks": {"spelling": {"action": "log"}}}, "checks.spelling: unknown check"),
    ({"checks": {"identity": {"delegations": {"office": ["a@example.sch.uk"]}}}},
     "checks.identity.delegations.office: must be a mailbox address"),
    ({"storage": {"event_retention_days": "ninety"}},
     "storage.event_retention_days: must be a whole number"),
])
def test_bad_config_names_file_key_and_problem(tmp_path, change, expected):
    data = base_config(tmp_path / "var", "maildir:var/outbox")
    for section, values in change.items():
        data[section].update(values)
    path = tmp_path / "bad.toml"
    path.write_text(toml_dump(data))
    commands = ("check-config", "serve")
    for command, out in zip(commands, run_together(*[(c, "--config", str(path))
                                                     for c in commands]), strict=True):
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert f"{path}: {expected}" in out.stderr, out.stderr


def test_broken_toml_and_missing_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[server\nlisten = 1\n")
    out = run("check-config", "--config", str(path))
    assert out.returncode == 2 and f"{path}: not valid TOML" in out.stderr
    out = run("check-config", "--config", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and "missing.toml: file not found" in out.stderr


def test_sizes_accept_common_spellings(tmp_path):
    data = base_config(tmp_path / "var", "maildir:var/outbox")
    data["server"]["max_message_size"] = "10 MB"
    data["server"]["max_header_size"] = 65536
    path = tmp_path / "ok.toml"
    path.write_text(toml_dump(data))
    s = config.load(path)
    assert (s.server.max_message_size, s.server.max_header_size) == (10_000_000, 65536)


def test_an_on_premises_range_beside_the_cloud_ones_is_trusted(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(toml_dump(base_config(tmp_path / "var", "smtp://127.0.0.1:25") | {
        "server": {"trusted_networks": ["192.0.2.0/24", "10.20.0.0/16", "::1/128"]}}))
    assert run("check-config", "--config", str(path)).returncode == 0
    names = {service for service, _ in ranges.load(None).shared()}
    assert names == {"Microsoft 365 (Exchange Online)", "Google Workspace (Gmail)"}


def test_an_upstream_that_is_mailguard_itself_is_a_config_error(tmp_path):
    cfg = base_config(tmp_path / "var", "smtp://127.0.0.1:25")
    cfg["upstream"]["url"] = "smtp://localhost:" + cfg["server"]["listen"].rpartition(":")[2]
    path = tmp_path / "m.toml"
    path.write_text(toml_dump(cfg))
    out = run("check-config", "--config", str(path))
    assert out.returncode == 2
    assert "upstream.url: localhost:" in out.stderr and "would relay to itself" in out.stderr
