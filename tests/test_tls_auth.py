"""STARTTLS and AUTH: offered only over TLS, relaying for signed-in users, identity per user."""

from __future__ import annotations

import re
import smtplib
import ssl

import pytest
import trustme
from aiosmtpd.controller import Controller
from conftest import SinkHandler, free_port, message


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def tls_gateway(make_gateway, ca, tmp_path, sink):
    cert = ca.issue_cert("mailguard.test", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "tls.pem"))
    users = tmp_path / "users"
    lines = []
    for user, password in (("teacher@example.sch.uk", "correct horse"), ("jbloggs", "s3cret!")):
        from mailguard.server.auth import hash_password
        lines.append(f"{user}:{hash_password(password)}")
    users.write_text("\n".join(lines) + "\n")
    return make_gateway({
        "server": {"tls_cert": str(tmp_path / "tls.pem"), "tls_key": str(tmp_path / "tls.pem"),
                   "auth_users_file": str(users), "trusted_networks": ["192.0.2.0/24"]},
        "checks": {"identity": {"delegations": {"office@example.sch.uk": ["jbloggs"]}}},
    })


def client(gw, ca, *, tls: bool = True) -> smtplib.SMTP:
    c = smtplib.SMTP("127.0.0.1", gw.port, timeout=30)
    c.ehlo("laptop")
    if tls:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        c.starttls(context=ctx)
        c.ehlo("laptop")
    return c


def test_auth_is_offered_only_after_starttls(tls_gateway, ca):
    c = client(tls_gateway, ca, tls=False)
    assert c.has_extn("starttls") and not c.has_extn("auth")
    code, _ = c.docmd("AUTH", "PLAIN AGpib2dncwBzM2NyZXQh")
    assert code >= 500
    c.quit()
    c = client(tls_gateway, ca)
    assert "PLAIN" in c.esmtp_features["auth"] and "LOGIN" in c.esmtp_features["auth"]
    c.quit()


def test_signed_in_user_relays_from_an_untrusted_network(tls_gateway, ca, sink):
    c = client(tls_gateway, ca)
    c.login("teacher@example.sch.uk", "correct horse")
    assert c.sendmail("teacher@example.sch.uk", ["parent@gmail.com"], message()) == {}
    c.quit()
    data = sink.wait_for(1)[0].data
    assert re.search(rb"with ESMTPSA id", data)


def test_without_auth_an_untrusted_client_cannot_relay_even_over_tls(tls_gateway, ca, sink):
    c = client(tls_gateway, ca)
    code, text = c.mail("teacher@example.sch.uk")
    assert code == 550 and b"Relaying denied" in text
    c.quit()


def test_wrong_password_is_refused(tls_gateway, ca):
    c = client(tls_gateway, ca)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        c.login("teacher@example.sch.uk", "wrong")
    c.quit()


def test_signed_in_user_cannot_send_as_someone_else(tls_gateway, ca, sink):
    c = client(tls_gateway, ca)
    c.login("teacher@example.sch.uk", "correct horse")
    c.mail("teacher@example.sch.uk")
    c.rcpt("parent@gmail.com")
    code, text = c.data(message(from_="head@example.sch.uk"))
    assert code == 550 and b"not the mailbox you signed in as" in text
    c.quit()
    assert sink.messages == []


def test_delegated_user_may_send_as_the_shared_mailbox(tls_gateway, ca, sink):
    c = client(tls_gateway, ca)
    c.login("jbloggs", "s3cret!")
    assert c.sendmail("office@example.sch.uk", ["parent@gmail.com"],
                      message(from_="Office <office@example.sch.uk>")) == {}
    c.mail("office@example.sch.uk")
    c.rcpt("parent@gmail.com")
    assert c.data(message(from_="head@example.sch.uk"))[0] == 550  # not delegated
    c.quit()
    assert len(sink.wait_for(1)) == 1


def tls_upstream(ca, handler, *, client_certificates: bool = False) -> tuple[Controller, int]:
    """A started aiosmtpd upstream that requires STARTTLS, with a certificate from `ca` (and,
    if asked, requiring a client certificate from it too)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    if client_certificates:
        ca.configure_trust(ctx)
        ctx.verify_mode = ssl.CERT_REQUIRED
    port = free_port()
    upstream = Controller(handler, hostname="127.0.0.1", port=port, tls_context=ctx,
                          require_starttls=True)
    upstream.start()
    return upstream, port


def test_relays_to_an_upstream_over_verified_starttls(make_gateway, ca, tmp_path):
    handler = SinkHandler()
    upstream, port = tls_upstream(ca, handler)
    try:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        gw = make_gateway({"upstream": {"ca_file": str(tmp_path / "ca.pem")}},
                          upstream=f"smtp+starttls://127.0.0.1:{port}")
        assert gw.send(message())[0] == 250
        assert len(handler.wait_for(1)) == 1
        # An upstream whose certificate we cannot verify gets nothing: 451, retry later.
        other = make_gateway({"upstream": {"ca_file": ""}},
                             upstream=f"smtp+starttls://127.0.0.1:{port}")
        with other.client() as c:
            code, text = c.mail("teacher@example.sch.uk")
        assert code == 451 and b"unavailable" in text
    finally:
        upstream.stop()


def _sign_in(gw, ca, user: str, password: str) -> tuple[int, bytes]:
    c = client(gw, ca)
    try:
        return c.docmd("AUTH", "PLAIN " + __import__("base64").b64encode(
            f"\0{user}\0{password}".encode()).decode())
    finally:
        c.close()


def test_a_password_guesser_is_stopped_across_workers_and_the_owner_gets_back_in(
        make_gateway, ca, tmp_path, sink):
    """As many wrong passwords from one address as allowed in the window: the next try, even
    with the right password, gets 454; once the window passes it works again. Twelve tries
    over two workers reach both (all on one has odds of 1 in 2,000): the count is shared.
    Each failure, refusal and sign-in is in the audit trail with the address."""
    import json
    import time

    from mailguard.server.auth import hash_password

    cert = ca.issue_cert("mailguard.test", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "tls.pem"))
    (tmp_path / "users").write_text(f"jbloggs:{hash_password('s3cret!')}\n")
    gw = make_gateway({"server": {
        "tls_cert": str(tmp_path / "tls.pem"), "tls_key": str(tmp_path / "tls.pem"),
        "auth_users_file": str(tmp_path / "users"), "trusted_networks": ["192.0.2.0/24"],
        "workers": 2, "auth_max_failures": 12, "auth_window": 8}})
    time.sleep(1.0)   # both workers listening
    started = time.monotonic()
    for n in range(12):
        assert _sign_in(gw, ca, "jbloggs", f"guess{n}")[0] == 535
    code, text = _sign_in(gw, ca, "jbloggs", "s3cret!")
    assert code == 454 and b"Too many failed sign-ins" in text
    assert _sign_in(gw, ca, "someone.else", "guess")[0] == 454   # the address is held too
    time.sleep(max(0.0, 8.5 - (time.monotonic() - started)))
    assert _sign_in(gw, ca, "jbloggs", "s3cret!")[0] == 235
    pids = {line.get("pid") for line in map(json.loads, (
        ln for ln in gw.log().splitlines() if '"auth_failed"' in ln))}
    assert len(pids) == 2, "the failures should have reached both workers"
    time.sleep(0.5)
    rows = gw.sql("SELECT actor, action, address FROM audit WHERE action LIKE 'smtp%' "
                  "ORDER BY seq")
    actions = [a for _, a, _ in rows]
    assert actions.count("smtp sign-in failed") == 12
    assert actions.count("smtp sign-in refused") == 2 and actions[-1] == "smtp sign-in"
    assert {addr for _, _, addr in rows} == {"127.0.0.1"}


def test_an_upstream_that_requires_our_client_certificate_gets_it(make_gateway, ca, tmp_path):
    """The return hop into Microsoft 365 (or a partner's relay) may identify mailguard by
    its TLS certificate: with upstream.tls_cert the mail goes, without it the upstream
    refuses the connection and the sender's server is told to retry (451)."""
    seen: list[str] = []

    class Recording(SinkHandler):
        async def handle_DATA(self, server, session, envelope):
            peer = session.ssl.get("peercert") if isinstance(session.ssl, dict) else None
            seen.append(str(peer or server.transport.get_extra_info("peercert")))
            return await super().handle_DATA(server, session, envelope)

    handler = Recording()
    upstream, port = tls_upstream(ca, handler, client_certificates=True)
    try:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        ca.issue_cert("mailguard.example.sch.uk").private_key_and_cert_chain_pem.write_to_path(
            str(tmp_path / "client.pem"))
        gw = make_gateway({"upstream": {"ca_file": str(tmp_path / "ca.pem"),
                                        "tls_cert": str(tmp_path / "client.pem"),
                                        "tls_key": str(tmp_path / "client.pem")}},
                          upstream=f"smtp+starttls://127.0.0.1:{port}")
        assert gw.send(message())[0] == 250
        assert len(handler.wait_for(1)) == 1
        assert "mailguard.example.sch.uk" in seen[0]
        gw.stop()
        without = make_gateway({"upstream": {"ca_file": str(tmp_path / "ca.pem")}},
                               upstream=f"smtp+starttls://127.0.0.1:{port}")
        with without.client() as c:
            code, _ = c.mail("teacher@example.sch.uk")
        assert code == 451
        assert len(handler.messages) == 1
    finally:
        upstream.stop()


def test_a_client_certificate_needs_tls_and_its_key(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    pem = tmp_path / "c.pem"
    trustme.CA().issue_cert("x.test").private_key_and_cert_chain_pem.write_to_path(str(pem))
    for upstream, problem in (
            (f'url = "smtp://127.0.0.1:25"\ntls_cert = "{pem}"\ntls_key = "{pem}"',
             "upstream.tls_cert: a client certificate is shown only over TLS"),
            (f'url = "smtps://127.0.0.1:465"\ntls_cert = "{pem}"',
             "upstream.tls_key: tls_cert and tls_key must be set together")):
        path = tmp_path / "m.toml"
        path.write_text(f'[organisation]\nname = "T"\ndomains = ["example.sch.uk"]\n'
                        f'[storage]\ndata_dir = "{tmp_path / "var"}"\n[upstream]\n{upstream}\n')
        out = subprocess.run([sys.executable, "-m", "mailguard", "check-config", "--config",
                              str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 2 and f"{path}: {problem}" in out.stderr, out.stderr


def test_check_config_warns_of_a_certificate_that_expires_within_30_days(tmp_path):
    import datetime
    import subprocess
    import sys

    from conftest import ROOT

    ca = trustme.CA()
    now = datetime.datetime.now(datetime.UTC)
    out = {}
    for name, days in (("soon", 10), ("later", 100), ("gone", -2)):
        pem = tmp_path / f"{name}.pem"
        ca.issue_cert("mailguard.test", not_before=now - datetime.timedelta(days=30),
                      not_after=now + datetime.timedelta(days=days)
                      ).private_key_and_cert_chain_pem.write_to_path(str(pem))
        path = tmp_path / f"{name}.toml"
        path.write_text(f'[organisation]\nname = "T"\ndomains = ["example.sch.uk"]\n'
                        f'[storage]\ndata_dir = "{tmp_path / "var"}"\n'
                        f'[server]\ntls_cert = "{pem}"\ntls_key = "{pem}"\n')
        run = subprocess.run([sys.executable, "-m", "mailguard", "check-config", "--config",
                              str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert run.returncode == 0, run.stderr
        out[name] = run.stdout
    assert (f"warning: {tmp_path / 'soon.toml'}: server.tls_cert: {tmp_path / 'soon.pem'} "
            "expires on") in out["soon"]
    assert "in 9 days" in out["soon"] or "in 10 days" in out["soon"]
    assert "expire" not in out["later"]
    assert "expired on" in out["gone"] and "Renew it" in out["gone"]
