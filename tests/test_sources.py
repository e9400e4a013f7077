"""Who may relay: named sources over real SMTP on loopback. Exchange Online and Google are
played by clients on their own loopback addresses (127.0.0.2 for "Microsoft 365", 127.0.0.3
for "Google"), standing in for the services' shared ranges; the mail must then prove it is
the trust's own, as it must from the real ranges."""

from __future__ import annotations

import hashlib
import json
import re
import smtplib
import ssl
import time
import urllib.request

import pytest
import trustme
from conftest import message, run, toml_dump
from hypothesis import given
from hypothesis import strategies as st

from mailguard.sources import proof, ranges

OURS = "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b"
OTHER = "0badc0de-1111-4222-8333-944445555666"
SECRET = "c0nnector-" + "9f" * 12
GOOGLE_SECRET = "w0rkspace-" + "3a" * 12
M365, M365_SECRET, GOOGLE, SCANNER, STRANGER = (
    "127.0.0.2", "127.0.0.4", "127.0.0.3", "127.0.0.5", "127.0.0.6")


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def exo(tenant: str = OURS, extra: str = "", body: str = "Please bring a packed lunch.\r\n"
        ) -> bytes:
    """A message as Exchange Online hands it to an outbound connector's smarthost."""
    return message(body=body, extra_headers=(
        "X-MS-Exchange-CrossTenant-Network-Message-Id: 1c1f3a4e-0000-4000-8000-00000000abcd\r\n"
        f"X-MS-Exchange-CrossTenant-Id: {tenant}\r\n"
        "X-MS-Exchange-CrossTenant-AuthAs: Internal\r\n"
        "X-MS-Exchange-Transport-CrossTenantHeadersStamped: DB9PR01MB1234\r\n"
        "X-OriginatorOrg: example.sch.uk\r\n" + extra))


@pytest.fixture
def sourced(make_gateway, ca, tmp_path):
    cert = ca.issue_cert("mailguard.test", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "tls.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    printer = ca.issue_cert("printer.example.sch.uk")
    der = ssl.PEM_cert_to_DER_cert(printer.cert_chain_pems[0].bytes().decode())
    for name, value in (("m365.secret", SECRET), ("google.secret", GOOGLE_SECRET)):
        (tmp_path / name).write_text(value + "\n")
        (tmp_path / name).chmod(0o600)
    gw = make_gateway({
        "server": {"tls_cert": str(tmp_path / "tls.pem"), "tls_key": str(tmp_path / "tls.pem")},
        "sources": {
            "exchange": {"type": "network", "networks": ["127.0.0.1/32"]},
            "m365": {"type": "microsoft365", "tenant_ids": [OURS.upper()],
                     "ranges": [f"{M365}/32"]},
            "m365_ruled": {"type": "microsoft365", "tenant_ids": [OURS],
                           "ranges": [f"{M365_SECRET}/32"],
                           "secret_header": "X-Mailguard-Connector",
                           "secret_file": str(tmp_path / "m365.secret")},
            "workspace": {"type": "google", "ranges": [f"{GOOGLE}/32"],
                          "secret_header": "X-Mailguard-Route",
                          "secret_file": str(tmp_path / "google.secret")},
            "scanner": {"type": "certificate", "subjects": ["scanner.example.sch.uk"],
                        "ca_file": str(tmp_path / "ca.pem")},
            "printer": {"type": "certificate", "ca_file": str(tmp_path / "ca.pem"),
                        "fingerprints": ["SHA256:" + ":".join(
                            f"{b:02X}" for b in hashlib.sha256(der).digest())]},
        }}, start=False)
    gw.printer = printer
    del gw.config["server"]["trusted_networks"]
    gw.write_config()
    gw.start()
    return gw


def connect(gw, ca, address: str, *, tls: bool = True, cert=None) -> smtplib.SMTP:
    c = smtplib.SMTP("127.0.0.1", gw.port, timeout=30, source_address=(address, 0))
    c.ehlo("outbound.protection.outlook.com")
    if tls:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        if cert is not None:
            cert.configure_cert(ctx)
        c.starttls(context=ctx)
        c.ehlo("outbound.protection.outlook.com")
    return c


def send(c: smtplib.SMTP, raw: bytes) -> tuple[int, bytes]:
    with c:
        code, text = c.mail("teacher@example.sch.uk")
        if code != 250:
            return code, text
        assert c.rcpt("parent@gmail.com")[0] == 250
        return c.data(raw)


def metric(gw, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{gw.web_port}/metrics", timeout=10).read()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.decode().splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{want}}} not in /metrics")


def test_our_tenant_is_relayed_from_exchange_online(sourced, ca, sink):
    code, _ = send(connect(sourced, ca, M365), exo())
    assert code == 250
    assert b"X-MS-Exchange-CrossTenant-Id: " + OURS.encode() in sink.wait_for(1)[0].data
    assert metric(sourced, "mailguard_source_messages_total", source="m365",
                  outcome="proven") == 1
    assert [(e["verdict"], e["source"]) for e in sourced.events()] == [("delivered", "m365")]


def test_another_tenant_is_refused_naming_the_tenant_it_claims(sourced, ca, sink):
    code, text = send(connect(sourced, ca, M365), exo(OTHER))
    assert code == 550
    flat = re.sub(rb"\r\n550[- ]5\.7\.1 ", b" ", text)
    assert b"5.7.1 Mail from Microsoft 365 for another tenant (" + OTHER.encode() + b")" in flat
    assert b"mailguard relays only Test Academy Trust's tenant" in flat
    time.sleep(0.5)
    assert sink.messages == []
    assert metric(sourced, "mailguard_refused_total", reason="m365_other_tenant") == 1
    assert metric(sourced, "mailguard_source_messages_total", source="m365",
                  outcome="refused") == 1
    logged = [json.loads(line) for line in sourced.log().splitlines() if line.startswith("{")]
    refused = [e for e in logged if e["event"] == "source_refused"]
    assert [(e["source"], e["reason"], e["claimed_tenant"]) for e in refused] == [
        ("m365", "m365_other_tenant", OTHER)]
    assert [(e["verdict"], e["source"]) for e in sourced.events()] == [
        ("m365_other_tenant", "m365")]


@pytest.mark.parametrize(("raw", "reason"), [
    # The tenant stamp written into the body (or an attached message) is not a header.
    (message(body=f"X-MS-Exchange-CrossTenant-Id: {OURS}\r\n\r\nhello\r\n"), b"without Exchange"),
    # A forged stamp beside Exchange Online's own: two stamps, so neither is believed.
    (exo(OTHER, extra=f"X-MS-Exchange-CrossTenant-Id: {OURS}\r\n"), b"2 tenant stamps"),
    (exo(OURS, extra=f"x-ms-exchange-crosstenant-id:\r\n {OTHER}\r\n"), b"2 tenant stamps"),
    # A stamp that is not a tenant id at all.
    (exo("our-school"), b"another tenant (our-school)"),
])
def test_forged_or_repeated_tenant_stamps_are_refused(sourced, ca, sink, raw, reason):
    code, text = send(connect(sourced, ca, M365), raw)
    assert code == 550 and reason in text
    time.sleep(0.3)
    assert sink.messages == []


def test_a_folded_lower_case_stamp_is_still_read(sourced, ca, sink):
    raw = exo().replace(b"X-MS-Exchange-CrossTenant-Id: ", b"x-ms-exchange-crosstenant-id:\r\n\t")
    assert send(connect(sourced, ca, M365), raw)[0] == 250
    sink.wait_for(1)


def test_cloud_ranges_must_use_tls(sourced, ca, sink):
    for address in (M365, GOOGLE):
        code, text = send(connect(sourced, ca, address, tls=False), exo())
        assert code == 530 and b"must come over TLS" in text
    time.sleep(0.3)
    assert sink.messages == []


def test_the_transport_rule_secret_is_required_checked_and_removed(sourced, ca, sink):
    no_secret = send(connect(sourced, ca, M365_SECRET), exo())
    wrong = send(connect(sourced, ca, M365_SECRET),
                 exo(extra="X-Mailguard-Connector: guessed-guessed-guessed-guessed\r\n"))
    twice = send(connect(sourced, ca, M365_SECRET), exo(extra=(
        f"X-Mailguard-Connector: {SECRET}\r\nX-Mailguard-Connector: {SECRET}\r\n")))
    for code, text in (no_secret, wrong, twice):
        assert code == 550 and b"connector header" in text
    ok = send(connect(sourced, ca, M365_SECRET), exo(extra=f"X-Mailguard-Connector:  {SECRET}\r\n"))
    assert ok[0] == 250
    relayed = sink.wait_for(1)[0].data
    assert b"X-Mailguard-Connector" not in relayed and SECRET.encode() not in relayed
    assert b"X-OriginatorOrg: example.sch.uk" in relayed
    assert SECRET not in sourced.log()
    assert metric(sourced, "mailguard_refused_total", reason="m365_secret_missing") == 1
    assert metric(sourced, "mailguard_refused_total", reason="m365_secret_wrong") == 2


def test_google_needs_the_routing_rules_header(sourced, ca, sink):
    code, text = send(connect(sourced, ca, GOOGLE), message())
    assert code == 550 and b"Mail from Google Workspace without Test Academy Trust's" in text
    held = message(extra_headers=f"X-Mailguard-Route: {GOOGLE_SECRET}\r\n")
    assert send(connect(sourced, ca, GOOGLE), held)[0] == 250
    relayed = sink.wait_for(1)[0].data
    assert GOOGLE_SECRET.encode() not in relayed
    # Google's header does not open Microsoft's door, nor the reverse.
    assert send(connect(sourced, ca, M365_SECRET), held)[0] == 550


def test_a_listed_client_certificate_relays_from_any_address(sourced, ca, sink):
    scanner = ca.issue_cert("scanner.example.sch.uk")
    other = ca.issue_cert("laptop.example.sch.uk")
    assert send(connect(sourced, ca, SCANNER, cert=scanner), message())[0] == 250
    sink.wait_for(1)
    code, text = send(connect(sourced, ca, SCANNER, cert=other), message())
    assert code == 550 and b"Relaying denied" in text
    # Pinned by its SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it.
    assert send(connect(sourced, ca, SCANNER, cert=sourced.printer), message())[0] == 250
    sink.wait_for(2)
    # A certificate from a CA the source does not name fails the handshake itself.
    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
        send(connect(sourced, ca, SCANNER, cert=trustme.CA().issue_cert("scanner.example.sch.uk")),
             message())
    code, text = send(connect(sourced, ca, STRANGER), message())
    assert code == 550 and b"Relaying denied: 127.0.0.6 is not one of Test Academy Trust's" in text


def test_on_premises_server_relays_by_address_without_proof(sourced, ca, sink):
    assert send(connect(sourced, ca, "127.0.0.1", tls=False), message())[0] == 250
    sink.wait_for(1)


def test_check_config_explains_each_source(sourced):
    out = sourced.cli("check-config")
    assert out.returncode == 0, out.stderr
    assert "exchange (network): connections from 127.0.0.1/32 relay by address." in out.stdout
    assert (f"m365 (microsoft365): connections from Exchange Online's ranges (1) relay over TLS "
            f"only mail stamped with tenant {OURS}; other tenants are refused.") in out.stdout
    assert "workspace (google): connections from Google's ranges (1) relay over TLS only mail, " \
           "carrying the X-Mailguard-Route header" in out.stdout
    assert "scanner (certificate): connections that show a TLS client certificate" in out.stdout
    assert SECRET not in out.stdout and GOOGLE_SECRET not in out.stdout


def test_trusted_networks_still_works_and_is_called_deprecated(gateway):
    out = gateway.cli("check-config")
    assert out.returncode == 0
    assert "trusted_networks (network): connections from 127.0.0.0/8 relay by address " \
           "(from server.trusted_networks, which is deprecated" in out.stdout
    assert gateway.send(message())[0] == 250


def _config_error(tmp_path, sources: dict, server: dict | None = None) -> str:
    from conftest import base_config

    cfg = base_config(tmp_path / "var", "smtp://127.0.0.1:25")
    del cfg["server"]["trusted_networks"]
    cfg["server"].update(server or {})
    cfg["sources"] = sources
    path = tmp_path / "m.toml"
    path.write_text(toml_dump(cfg))
    out = run("check-config", "--config", str(path))
    assert out.returncode == 2, out.stdout
    assert "Traceback" not in out.stderr
    return out.stderr.strip()


@pytest.mark.parametrize(("sources", "expected"), [
    ({"x": {"type": "network", "networks": ["40.107.12.0/24"]}},
     "sources.x.networks: 40.107.12.0/24 overlaps 40.107.0.0/16, an outbound range of "
     "Microsoft 365 (Exchange Online) that every one of its tenants shares"),
    ({"x": {"type": "network", "networks": ["::/0"]}}, "sources.x.networks: ::/0 overlaps"),
    ({"x": {"type": "microsoft365", "tenant_ids": [OURS]}},
     "sources.x.type: a microsoft365 source needs TLS"),
    ({"x": {"type": "carrier-pigeon"}}, "sources.x.type: must be one of network, microsoft365"),
    ({"x": {"networks": ["10.0.0.0/8"]}}, "sources.x.type: is required"),
    ({"x": {"type": "network", "networks": ["10.0.0.0/8"], "tenant_ids": []}},
     "sources.x.tenant_ids: unknown key"),
])
def test_bad_sources_are_config_errors(tmp_path, sources, expected):
    assert expected in _config_error(tmp_path, sources)


def test_cloud_sources_must_be_bound_to_the_school(tmp_path, ca):
    cert = ca.issue_cert("mailguard.test")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "tls.pem"))
    tls = {"tls_cert": str(tmp_path / "tls.pem"), "tls_key": str(tmp_path / "tls.pem")}
    loose = tmp_path / "loose.secret"
    loose.write_text(SECRET)
    loose.chmod(0o644)
    short = tmp_path / "short.secret"
    short.write_text("hunter2")
    short.chmod(0o600)
    cases = [
        ({"type": "microsoft365"}, "sources.x.tenant_ids: is required"),
        ({"type": "microsoft365", "tenant_ids": ["example.onmicrosoft.com"]},
         "sources.x.tenant_ids: 'example.onmicrosoft.com' is not a tenant id"),
        ({"type": "google"}, "sources.x.secret_header: is required"),
        ({"type": "google", "secret_header": "X-Route", "secret_file": str(loose)},
         f"sources.x.secret_file: {loose} can be read by other users"),
        ({"type": "google", "secret_header": "X-Route", "secret_file": str(short)},
         "sources.x.secret_file: the secret must be at least 24"),
        ({"type": "google", "secret_header": "X-Route"},
         "sources.x.secret_file: set one of secret_file or secret_env"),
        ({"type": "certificate", "subjects": ["mail.protection.outlook.com"]},
         "sources.x.subjects: mail.protection.outlook.com is a certificate every tenant"),
    ]
    for source, expected in cases:
        assert expected in _config_error(tmp_path, {"x": source}, tls), source


def test_a_users_file_needs_an_auth_source_when_sources_are_named(tmp_path, ca):
    cert = ca.issue_cert("mailguard.test")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "tls.pem"))
    (tmp_path / "users").write_text("")
    server = {"tls_cert": str(tmp_path / "tls.pem"), "tls_key": str(tmp_path / "tls.pem"),
              "auth_users_file": str(tmp_path / "users")}
    assert 'server.auth_users_file: is set, but no source has type = "auth"' in _config_error(
        tmp_path, {"x": {"type": "network", "networks": ["10.0.0.0/8"]}}, server)


def _ranges_file(path, date: str, extra: str = "", bad: str = "") -> None:
    shipped = ranges.SHIPPED.read_text()
    text = shipped.replace('date = "2026-12-01"', f'date = "{date}"')
    text = text.replace('"40.92.0.0/15",', f'"40.92.0.0/15", {extra}' if extra else '"40.92.0.0/15",')
    path.write_text(text.replace('"40.107.0.0/16"', bad) if bad else text)


def test_sources_update_installs_a_newer_ranges_file_that_then_binds(make_gateway, tmp_path):
    gw = make_gateway(start=False)
    newer, older, broken = tmp_path / "newer.toml", tmp_path / "older.toml", tmp_path / "b.toml"
    _ranges_file(newer, "2027-03-01", extra='"198.51.100.0/24",')
    _ranges_file(older, "2025-01-01")
    _ranges_file(broken, "2027-03-01", bad='"40.107.0.0/33"')
    out = gw.cli("sources", "update", str(broken))
    assert out.returncode == 2
    assert f"{broken}: microsoft365.ranges: '40.107.0.0/33' is not a network" in out.stderr
    out = gw.cli("sources", "update", str(older))
    assert out.returncode == 2 and "is older than the ranges in use (2026-12-01" in out.stderr
    out = gw.cli("sources", "update", str(newer))
    assert out.returncode == 0, out.stderr
    assert "Microsoft 365 (Exchange Online): 7 ranges dated 2027-03-01 (1 new, 0 gone)" in out.stdout
    assert (gw.data_dir / "shared_ranges.toml").read_text() == newer.read_text()
    assert "dated 2027-03-01" in gw.cli("sources", "list").stdout
    # The new range is now a shared one: trusting it by address is refused.
    gw.config["server"]["trusted_networks"] = ["198.51.100.7/32"]
    gw.write_config()
    out = gw.cli("check-config")
    assert out.returncode == 2
    assert "server.trusted_networks: 198.51.100.7/32 overlaps 198.51.100.0/24" in out.stderr
    # And a newer file that would catch a source already configured is not installed.
    gw.config["server"]["trusted_networks"] = ["203.0.113.0/24"]
    gw.write_config()
    _ranges_file(newer, "2027-06-01", extra='"203.0.113.128/25",')
    out = gw.cli("sources", "update", str(newer))
    assert out.returncode == 2 and "sources.trusted_networks: 203.0.113.0/24 overlaps" in out.stderr
    assert "2027-03-01" in (gw.data_dir / "shared_ranges.toml").read_text()


def _presented(port: int, ca) -> str:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.starttls(context=ctx)
        cert = c.sock.getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


def test_a_renewed_certificate_is_used_without_a_restart(make_gateway, ca, tmp_path):
    pem = tmp_path / "tls.pem"
    ca.issue_cert("old.mailguard.test", "127.0.0.1", common_name="old.mailguard.test") \
        .private_key_and_cert_chain_pem.write_to_path(str(pem))
    gw = make_gateway({"server": {"tls_cert": str(pem), "tls_key": str(pem)}})
    assert _presented(gw.port, ca) == "old.mailguard.test"
    renewed = ca.issue_cert("new.mailguard.test", "127.0.0.1", common_name="new.mailguard.test")
    tmp = tmp_path / "renewed.pem"
    renewed.private_key_and_cert_chain_pem.write_to_path(str(tmp))
    tmp.replace(pem)   # as certbot's deploy step does: a new file in place
    deadline = time.monotonic() + 20
    while _presented(gw.port, ca) != "new.mailguard.test":
        assert time.monotonic() < deadline, gw.log()
        time.sleep(0.3)
    assert gw.proc.poll() is None


@given(st.lists(st.tuples(
    st.sampled_from(["X-MS-Exchange-CrossTenant-Id", "x-ms-exchange-crosstenant-id",
                     "X-MS-Exchange-CrossTenant-Id-Other", "Subject", "X-Ms-Exchange-CrossTenant-ID"]),
    st.lists(st.text(alphabet="abc- 0123456789:", max_size=12), min_size=1, max_size=3),
    st.sampled_from(["\r\n", "\n"])), max_size=8))
def test_stamps_are_read_as_the_standard_library_reads_headers(fields):
    """The fast reader finds the same values as Python's email parser, folding and all."""
    import email.parser

    head = "".join(f"{name}: {(eol + ' ').join(parts)}{eol}" for name, parts, eol in fields)
    parsed = email.parser.HeaderParser().parsestr(head + "\n")
    want = [" ".join(v.split()) for v in parsed.get_all("X-MS-Exchange-CrossTenant-Id") or []]
    assert proof.values(head.encode(), "X-MS-Exchange-CrossTenant-Id") == want


@pytest.mark.sqlite_only   # an SQLite file from an older version (PostgreSQL: migrations/)
def test_a_store_from_before_sources_gains_the_column_and_keeps_its_events(make_gateway, sink):
    import sqlite3

    gw = make_gateway(start=False)
    gw.data_dir.mkdir(parents=True)
    old = sqlite3.connect(gw.data_dir / "mailguard.db")
    old.executescript("""
        CREATE TABLE events (id TEXT PRIMARY KEY, ts REAL NOT NULL, client TEXT, helo TEXT,
            auth_user TEXT, sender TEXT, rcpt_count INTEGER, rcpt_domains TEXT,
            refused_count INTEGER, size INTEGER, verdict TEXT NOT NULL, checks TEXT,
            upstream TEXT, latency_ms REAL, quarantine_id TEXT, tls INTEGER, stamped INTEGER);
        INSERT INTO events (id, ts, client, verdict) VALUES ('OLD1', strftime('%s','now'),
            '192.0.2.1', 'delivered');
        PRAGMA user_version = 1;""")
    old.close()
    gw.start()
    assert gw.send(message())[0] == 250
    sink.wait_for(1)
    got = {e["id"]: e.get("source") for e in gw.events()}
    assert got.pop("OLD1") is None and list(got.values()) == ["trusted_networks"]
