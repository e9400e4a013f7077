"""Relay behaviour over real SMTP: client → mailguard → recording aiosmtpd upstream."""

from __future__ import annotations

import re
import socket
import time

from conftest import added_headers, message


def test_relays_and_changes_nothing_but_the_headers_on_top(gateway, sink):
    # Odd folding, header case, 8-bit text, a line of dots, MIME preamble and epilogue.
    original = (
        b"from: Teacher <teacher@example.sch.uk>\r\n"
        b"To: parent@gmail.com\r\n"
        b"SUBJECT:   Caf\xc3\xa9   menu\r\n"
        b"X-Odd:\tfolded\r\n   continuation  \r\n"
        b"Message-ID: <keep@example.sch.uk>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n'
        b"\r\n"
        b"preamble text\r\n"
        b"--b1\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b".\r\n"
        b"..two dots\r\n"
        b". dot space\r\n"
        b"Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9e  \r\n"
        b"--b1--\r\n"
        b"epilogue\r\n"
    )
    code, reply = gateway.send(original)
    assert code == 250, reply
    got = sink.wait_for(1)[0]
    top = added_headers(got.data, original)
    assert re.match(rb"X-Mailguard: v=1; i=\w+; t=\d+; s=\S+\r\nReceived: from client\.example"
                    rb"\.sch\.uk \(\[127\.0\.0\.1\]\)\r\n\tby mailguard\.test "
                    rb"\(mailguard(?: node [\w.-]+)?\) with ESMTP id \w+\r\n", top), top
    assert b"Message-ID" not in top  # it had one
    assert got.sender == "teacher@example.sch.uk"
    assert got.recipients == ["parent@gmail.com"]


def test_adds_a_message_id_when_missing(gateway, sink):
    original = b"From: teacher@example.sch.uk\r\nTo: parent@gmail.com\r\nSubject: hi\r\n\r\nhi\r\n"
    code, _ = gateway.send(original)
    assert code == 250
    top = added_headers(sink.wait_for(1)[0].data, original)
    assert re.search(rb"^Message-ID: <\w+@mailguard\.test>\r\n", top, re.M)


def test_ehlo_advertises_size_8bitmime_smtputf8_and_no_auth_without_tls(gateway):
    with gateway.client() as c:
        assert c.has_extn("size") and c.esmtp_features["size"] == str(35 * 1024 * 1024)
        assert c.has_extn("8bitmime") and c.has_extn("smtputf8")
        assert not c.has_extn("starttls") and not c.has_extn("auth")


def test_untrusted_client_is_refused_with_a_reason(make_gateway, sink):
    gw = make_gateway({"server": {"trusted_networks": ["192.0.2.0/24"]}})
    with gw.client() as c:
        code, text = c.mail("teacher@example.sch.uk")
    assert code == 550
    assert b"5.7.1 Relaying denied: 127.0.0.1 is not one of Test Academy Trust's mail servers" in text
    assert sink.handler.commands == []  # nothing reached the upstream
    assert [e["verdict"] for e in gw.events()] == ["relay_denied"]


def test_sender_outside_the_organisation_is_refused(gateway, sink):
    with gateway.client() as c:
        code, text = c.mail("someone@gmail.com")
    assert code == 550 and b"outside Test Academy Trust's domains" in text
    assert sink.handler.commands == []


def test_null_sender_bounces_are_relayed(gateway, sink):
    original = message(from_="MAILER-DAEMON@mx.example.sch.uk")
    code, text = gateway.send(original, sender="")
    assert code == 250, text
    assert sink.wait_for(1)[0].sender == "<>"  # aiosmtpd's spelling of the null sender


def test_recipients_the_upstream_refuses_are_refused_to_the_client(gateway, sink):
    sink.handler.refuse["gone@gmail.com"] = "550 5.1.1 <gone@gmail.com>: mailbox unavailable"
    sink.handler.refuse["full@gmail.com"] = "452 4.2.2 mailbox full"
    with gateway.client() as c:
        assert c.mail("teacher@example.sch.uk")[0] == 250
        assert c.rcpt("ok@gmail.com")[0] == 250
        code, text = c.rcpt("gone@gmail.com")
        assert (code, text) == (550, b"5.1.1 <gone@gmail.com>: mailbox unavailable")
        assert c.rcpt("full@gmail.com")[0] == 452
        assert c.data(message())[0] == 250
    assert sink.wait_for(1)[0].recipients == ["ok@gmail.com"]
    event = gateway.events()[-1]
    assert (event["rcpt_count"], event["refused_count"]) == (1, 2)


def test_upstream_down_gives_451_and_keeps_nothing(make_gateway, sink):
    sink.stop()
    gw = make_gateway()
    with gw.client() as c:
        code, text = c.mail("teacher@example.sch.uk")
    assert code == 451 and b"upstream mail server unavailable" in text
    assert not list((gw.data_dir / "quarantine").glob("*.eml"))


def test_upstream_deferral_at_data_is_451(gateway, sink):
    sink.handler.data_reply = "452 4.3.1 Insufficient system storage"
    code, text = gateway.send(message())
    assert code == 451 and b"deferred" in text
    assert gateway.events()[-1]["verdict"] == "tempfailed"


def test_upstream_rejection_at_data_is_passed_on(gateway, sink):
    sink.handler.data_reply = "554 5.7.1 Message rejected as spam"
    code, text = gateway.send(message())
    assert code == 554
    assert text.startswith(b"5.7.1 The receiving mail server refused the message: Message rejected")
    assert gateway.events()[-1]["verdict"] == "upstream_refused"


def test_message_too_big_is_552(make_gateway, sink):
    gw = make_gateway({"server": {"max_message_size": "20KiB"}})
    code, text = gw.send(message(body="x" * 70 + "\r\n") * 400)
    assert code == 552 and b"5.3.4" in text
    assert sink.messages == []
    with gw.client() as c:  # the connection is still good for the next message
        assert c.sendmail("teacher@example.sch.uk", ["p@gmail.com"], message()) == {}


def test_too_many_recipients_is_452(make_gateway, sink):
    gw = make_gateway({"server": {"max_recipients": 2}})
    with gw.client() as c:
        c.mail("teacher@example.sch.uk")
        assert c.rcpt("a@gmail.com")[0] == 250
        assert c.rcpt("b@gmail.com")[0] == 250
        code, text = c.rcpt("c@gmail.com")
        assert code == 452 and b"4.5.3" in text
        assert c.data(message())[0] == 250
    assert sink.wait_for(1)[0].recipients == ["a@gmail.com", "b@gmail.com"]


def test_overlong_line_is_refused(make_gateway, sink):
    gw = make_gateway({"server": {"max_line_length": 2000}})
    code, text = gw.send(message(body="y" * 3000 + "\r\n"))
    assert code == 500 and b"longer than 2000" in text
    assert sink.messages == []


def test_bare_lf_dot_does_not_end_data(gateway, sink):
    """SMTP smuggling: only CRLF.CRLF ends DATA, so a hidden second message stays inside."""
    smuggled = (b"From: teacher@example.sch.uk\r\nTo: parent@gmail.com\r\nSubject: one\r\n\r\n"
                b"first\n.\r\nMAIL FROM:<x@example.sch.uk>\r\n")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        for cmd in (b"EHLO x\r\n", b"MAIL FROM:<teacher@example.sch.uk>\r\n",
                    b"RCPT TO:<parent@gmail.com>\r\n", b"DATA\r\n"):
            s.sendall(cmd)
            while f.readline()[3:4] == b"-":
                pass
        s.sendall(smuggled + b".\r\n")
        assert f.readline().startswith(b"250")
    data = sink.wait_for(1)[0].data
    assert data.endswith(b"first\r\n.\r\nMAIL FROM:<x@example.sch.uk>\r\n")
    assert len(sink.messages) == 1


def test_a_valid_stamp_skips_checks_and_a_forged_one_does_not(gateway, sink):
    foreign = message(from_="someone@gmail.com")
    code, _ = gateway.send(foreign)
    assert code == 550  # the identity check refuses it
    # Mail that already passed (stamped on its way out) loops back via Microsoft 365.
    ok = message()
    assert gateway.send(ok)[0] == 250
    stamped = sink.wait_for(1)[0].data
    stamp = re.search(rb"^X-Mailguard: .*\r\n", stamped, re.M).group(0)
    code, _ = gateway.send(stamped)
    assert code == 250
    assert gateway.events()[-1]["stamped"] is True
    # The same stamp moved onto a different sender's message does not verify.
    moved = stamp + foreign
    assert gateway.send(moved)[0] == 550
    forged = re.sub(rb"s=\S+", b"s=AAAAAAAAAAAAAAAAAAAAAAAA", stamp) + foreign
    assert gateway.send(forged)[0] == 550


def test_malformed_commands_get_replies_not_a_crash(gateway, sink):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        for junk in (b"\xff\xfe\x00garbage\r\n", b"MAIL FROM:<<<>>>\r\n", b"RCPT TO:x\r\n",
                     b"A" * 5000 + b"\r\n", b"DATA\r\n"):
            s.sendall(junk)
            assert f.readline()[:1] in (b"5", b"4")
    with gateway.client() as c:
        assert c.sendmail("teacher@example.sch.uk", ["p@gmail.com"], message()) == {}


def test_each_transaction_writes_one_event_without_content(gateway, sink):
    gateway.send(message(subject="Secret subject words"), recipients=("a@gmail.com",
                                                                     "b@yahoo.co.uk"))
    events = gateway.events()
    assert len(events) == 1
    e = events[0]
    assert e["verdict"] == "delivered" and e["rcpt_count"] == 2
    assert e["rcpt_domains"] == ["gmail.com", "yahoo.co.uk"]
    assert e["sender"] == "teacher@example.sch.uk" and e["client"] == "127.0.0.1"
    assert e["upstream"].startswith("250 2.0.0 Ok: queued as SINK1")
    text = gateway.stored_bytes() + gateway.log().encode()
    assert b"Secret subject" not in text and b"packed lunch" not in text
    assert b"a@gmail.com" not in text  # recipient addresses are not kept, only domains


def test_upstream_connections_are_reused(gateway, sink):
    for _ in range(3):
        assert gateway.send(message())[0] == 250
    # Three client connections, one upstream connection (one EHLO) serving all of them.
    assert sink.handler.connections == 1
    assert len(sink.messages) == 3


def test_header_block_too_large_is_552_and_logged(make_gateway, sink):
    gw = make_gateway({"server": {"max_header_size": "4KiB"}})
    huge = "".join(f"X-Filler-{i}: {'z' * 60}\r\n" for i in range(100))
    code, text = gw.send(message(extra_headers=huge))
    assert code == 552 and b"header is larger than 4096 bytes" in text
    assert sink.messages == []
    assert [e["verdict"] for e in gw.events()] == ["header_too_big"]


def test_connection_limit_answers_421(make_gateway, sink):
    gw = make_gateway({"server": {"max_connections": 2}})
    first, second = gw.client(), gw.client()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as third:
        assert third.makefile("rb").readline().startswith(b"421 4.7.0 Too many connections")
    first.quit()
    second.quit()
    assert gw.send(message())[0] == 250


def test_idle_connections_are_closed(make_gateway, sink):
    gw = make_gateway({"server": {"idle_timeout": 1}})
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        started = time.monotonic()
        assert f.readline() == b""  # closed by the server
        assert 0.8 < time.monotonic() - started < 4


def proxied(gw, header: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(header)
        f = s.makefile("rb")
        greeting = f.readline()
        if not greeting:
            return b""
        s.sendall(b"EHLO lb\r\n")
        while f.readline()[3:4] == b"-":
            pass
        s.sendall(b"MAIL FROM:<teacher@example.sch.uk>\r\n")
        return f.readline()


def test_proxy_protocol_takes_the_client_address_from_the_load_balancer(make_gateway, sink):
    gw = make_gateway({"server": {"proxy_protocol": True, "trusted_networks": ["192.0.2.0/24"]}})
    assert proxied(gw, b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n").startswith(b"250")
    assert proxied(gw, b"PROXY TCP4 203.0.113.9 198.51.100.1 40000 25\r\n").startswith(b"550")
    assert proxied(gw, b"EHLO no-proxy-header\r\n") == b""  # PROXY is required once enabled
    assert [e["client"] for e in gw.events()] == ["203.0.113.9"]


def test_proxy_headers_from_elsewhere_are_refused(make_gateway, sink):
    gw = make_gateway({"server": {"proxy_protocol": True, "proxy_from": ["198.51.100.0/24"],
                                  "trusted_networks": ["192.0.2.0/24"]}})
    # Our test client is 127.0.0.1, not a listed load balancer: its PROXY claim is ignored.
    assert proxied(gw, b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n") == b""


def test_smtputf8_and_8bitmime_are_passed_upstream(gateway, sink):
    raw = "From: teacher@example.sch.uk\r\nTo: élève@exemple.fr\r\nSubject: Café\r\n\r\nMerci\r\n"
    with gateway.client() as c:
        refused = c.sendmail("teacher@example.sch.uk", ["élève@exemple.fr"], raw.encode(),
                             mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert refused == {}
    got = sink.wait_for(1)[0]
    assert got.recipients == ["élève@exemple.fr"]
    assert set(sink.handler.commands[0].split()) == {"MAIL", "teacher@example.sch.uk",
                                                    "BODY=8BITMIME", "SMTPUTF8"}
    assert b"with UTF8SMTP id" in got.data
