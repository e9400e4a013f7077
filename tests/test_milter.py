"""Milter mode: `mailguard milter` inside a private real Postfix (`smtpd_milters`), mail sent
to Postfix as a teacher's client would, and the sink as the outside world."""

from __future__ import annotations

import contextlib
import email
import grp
import os
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import tempfile
import threading
import time
from email.policy import default as default_policy
from email.utils import getaddresses
from pathlib import Path

import pytest
from conftest import ROOT, message
from milter import MilterGateway
from postfix import available, free_port
from test_bcc import DIRECTORY, PARENTS, bulk
from test_dkim import keygen, verify

pytestmark = pytest.mark.skipif(not available() and not os.environ.get("CI"),
                                reason="postfix is not installed (make test installs it)")


def body_text(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=default_policy)
    return "\n".join(p.get_content() for p in msg.walk() if p.get_content_type() == "text/plain")


def shown(raw: bytes) -> set[str]:
    msg = email.message_from_bytes(raw, policy=default_policy)
    return {a.lower() for _, a in getaddresses(msg.get_all("To", []) + msg.get_all("Cc", []))
            if a}


def test_disclaimer_bcc_and_signature_arrive_intact_through_postfix(make_milter, sink, tmp_path):
    (tmp_path / "directory.csv").write_text(DIRECTORY)
    record = keygen(tmp_path, "example.sch.uk", "mg")
    gw = make_milter({
        "directory": {"file": str(tmp_path / "directory.csv")},
        "dkim": {"domains": {"example.sch.uk": {
            "selector": "mg", "key": str(tmp_path / "dkim/example.sch.uk.mg.key")}}},
        "checks": {"bcc": {"action": "rewrite"},
                   "disclaimer": {"action": "log", "folder": str(ROOT / "config/disclaimers")}}})
    raw = bulk(PARENTS[:5])
    code, _ = gw.send(raw, recipients=tuple(PARENTS[:5]))
    assert code == 250
    [got] = sink.wait_for(1)
    assert sorted(got.recipients) == sorted(PARENTS[:5])   # the envelope is untouched
    assert shown(got.data) == {"teacher@example.sch.uk"}   # nobody sees the parents
    assert b"X-Mailguard-Bcc: " in got.data
    assert "Test Academy Trust" in body_text(got.data)     # the disclaimer, under the text
    assert body_text(got.data).index("Coaches leave at 9.") < body_text(got.data).index(
        "Test Academy Trust")
    # Postfix's own Received stays; mailguard adds none of its own, only its stamp.
    assert b"by mx.example.sch.uk (Postfix)" in got.data
    assert b"(mailguard)" not in got.data and b"X-Mailguard: v=1;" in got.data
    assert verify(got.data, {"mg._domainkey.example.sch.uk": record})
    [event] = gw.events()
    assert event["verdict"] == "delivered" and "bcc.moved" in event["checks"]
    assert "queue" in event["upstream"]


def test_a_rejection_reaches_the_client_with_the_clause(make_milter, sink):
    gw = make_milter()
    with pytest.raises(smtplib.SMTPDataError) as refused, gw.client() as c:
        c.sendmail("impostor@gmail.com", ["parent@gmail.com"],
                   message(from_="impostor@gmail.com"))
    assert refused.value.smtp_code == 550
    assert b"Not sent: the From address is not in Test Academy Trust's" in refused.value.smtp_error
    [event] = gw.events()
    assert event["verdict"] == "rejected"
    time.sleep(1)
    assert sink.messages == []


def test_several_messages_on_one_connection_each_get_their_own_changes(make_milter, sink,
                                                                        tmp_path):
    folder = tmp_path / "disclaimers"
    folder.mkdir()
    (folder / "default.txt").write_text("{trust}: monitored mail from {sender}.\n")
    gw = make_milter({"checks": {"disclaimer": {"action": "log", "folder": str(folder)}}})
    senders = [f"teacher{i}@example.sch.uk" for i in range(3)]
    with gw.client() as c:
        for i, sender in enumerate(senders):
            c.sendmail(sender, ["parent@gmail.com"],
                       message(from_=sender, subject=f"Note {i}", body=f"Message number {i}.\r\n"))
    got = sorted(sink.wait_for(3), key=lambda m: m.sender)
    for i, m in enumerate(got):
        text = body_text(m.data)
        assert f"Message number {i}." in text
        assert f"monitored mail from teacher{i}@example.sch.uk" in text
        assert text.count("monitored mail") == 1


def test_a_held_message_is_kept_and_never_delivered(make_milter, sink):
    gw = make_milter({"checks": {"language": {"action": "quarantine",
                                              "folder": str(ROOT / "wordlists")}}})
    code, _ = gw.send(message(body="If you do that again I will kill you.\r\n"))
    assert code == 250   # Postfix took it; mailguard held it, then Postfix discarded its copy
    [held] = gw.held()
    assert held["status"] == "held" and "language.threats" in str(held["findings"])
    assert "milter triggers DISCARD action" in gw.wait_in_log("milter-discard")
    time.sleep(1)
    assert sink.messages == [] and gw.postfix.queue_size() == 0


def test_mailguard_down_makes_postfix_defer_then_deliver_checked(make_milter, sink):
    gw = make_milter({"checks": {"disclaimer": {"action": "log",
                                               "folder": str(ROOT / "config/disclaimers")}}})
    gw.signal(signal.SIGKILL)
    gw.proc.wait()
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as deferred, gw.client() as c:
        c.sendmail("teacher@example.sch.uk", ["parent@gmail.com"], message())
    assert 400 <= deferred.value.smtp_code < 500   # the client keeps it and tries again
    time.sleep(1)
    assert sink.messages == []
    gw.start()
    assert gw.send(message())[0] == 250
    [got] = sink.wait_for(1)
    assert "Test Academy Trust" in body_text(got.data)


def test_a_check_that_cannot_run_makes_postfix_tempfail(make_milter, sink):
    import filemaker as fm

    gw = make_milter({"checks": {"antivirus": {"clamd": f"127.0.0.1:{free_port()}"}}})
    with pytest.raises(smtplib.SMTPDataError) as deferred, gw.client() as c:
        c.sendmail("teacher@example.sch.uk", ["parent@gmail.com"],
                   fm.mail_with({"report.pdf": b"%PDF-1.4 report"}))
    assert deferred.value.smtp_code == 451
    assert b"mailguard could not check this message just now" in deferred.value.smtp_error
    [event] = gw.events()
    assert event["verdict"] == "tempfailed" and event["checks"] == ["antivirus.unavailable"]
    time.sleep(1)
    assert sink.messages == []


def _send_until_taken(gw: MilterGateway, numbers: list[int], taken: dict[int, int]) -> None:
    """One client's share, several messages per connection; a 4xx (mailguard restarting) is
    retried as a mail server would, on a new connection."""
    queue = list(numbers)
    c: smtplib.SMTP | None = None
    while queue:
        n = queue[0]
        try:
            if c is None:
                c = gw.client()
            c.sendmail("teacher@example.sch.uk", ["parent@gmail.com"],
                       message(subject=f"Number {n}", body=f"Message number {n}.\r\n"))
            taken[n] = taken.get(n, 0) + 1
            queue.pop(0)
        except (smtplib.SMTPException, OSError) as e:
            code = getattr(e, "smtp_code", 421)
            assert 400 <= code < 500, f"message {n}: {e}"   # deferred, never refused or lost
            with contextlib.suppress(smtplib.SMTPException, OSError):
                if c is not None:
                    c.close()
            c = None
            time.sleep(0.1)
    if c is not None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            c.quit()


def test_two_thousand_messages_with_mailguard_restarted_mid_run_lose_none(make_milter, sink):
    gw = make_milter({"checks": {"disclaimer": {"action": "log",
                                               "folder": str(ROOT / "config/disclaimers")}}})
    total, clients = 2000, 8
    taken: dict[int, int] = {}
    threads = [threading.Thread(target=_send_until_taken,
                                args=(gw, list(range(i, total, clients)), taken))
               for i in range(clients)]
    for t in threads:
        t.start()
    while len(taken) < total // 3:
        time.sleep(0.05)
    gw.stop()                 # a graceful restart (SIGTERM) a third of the way in
    gw.start()
    while len(taken) < 2 * total // 3:
        time.sleep(0.05)
    gw.signal(signal.SIGKILL)   # and a crash two thirds of the way in
    gw.proc.wait()
    gw.start()
    for t in threads:
        t.join(300)
    assert len(taken) == total and set(taken.values()) == {1}
    got = sink.wait_for(total, timeout=300)
    time.sleep(2)
    numbers = sorted(int(m.data.split(b"Subject: Number ")[1].split(b"\r\n")[0]) for m in got)
    assert numbers == list(range(total))   # every one arrived, once
    # ... and every one was checked: mailguard's stamp and the disclaimer are on each.
    assert all(b"X-Mailguard: v=1;" in m.data and b"Test Academy Trust" in m.data for m in got)
    assert gw.postfix.queue_size() == 0


def test_over_a_unix_socket_only_the_mta_group_may_connect(make_milter, sink):
    """The socket is the MTA's group's (0660), made in a folder mailguard creates."""
    folder = Path(tempfile.mkdtemp(prefix="mailguard-milter-"))
    folder.chmod(0o755)   # Postfix's daemons (user postfix) must reach the socket
    try:
        path = folder / "run" / "milter.sock"
        gw = make_milter({"milter": {"group": "postfix"}}, socket=path)
        st, made = path.stat(), path.parent.stat()
        assert stat.S_IMODE(st.st_mode) == 0o660 and grp.getgrgid(st.st_gid).gr_name == "postfix"
        assert stat.S_IMODE(made.st_mode) == 0o750   # the folder it made, for Postfix to enter
        assert grp.getgrgid(made.st_gid).gr_name == "postfix"
        assert gw.send(message())[0] == 250
        [got] = sink.wait_for(1)
        assert b"X-Mailguard: v=1;" in got.data
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_check_config_says_what_milter_mode_does_otherwise(make_gateway):
    gw = make_gateway({"checks": {"bcc": {"action": "rewrite", "mode": "split"}},
                       "milter": {"listen": "inet:0.0.0.0:8891"}}, start=False)
    out = gw.cli("check-config")
    assert out.returncode == 0, out.stderr
    assert 'checks.bcc.mode = "split" is not possible in milter mode' in out.stdout
    assert "hides the parents' addresses as mode \"bcc\" does" in out.stdout
    assert "milter.listen = 'inet:0.0.0.0:8891' is reachable from other machines" in out.stdout
    bad = make_gateway({"milter": {"listen": "127.0.0.1:8891"}}, start=False).cli("check-config")
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith('milter.listen: must be "inet:HOST:PORT" such as '
                                       '"inet:127.0.0.1:8891", or "unix:/run/mailguard/'
                                       'milter.sock"; got \'127.0.0.1:8891\'')


def test_split_mode_falls_back_to_bcc_in_the_mtas_queue(make_milter, sink, tmp_path):
    (tmp_path / "directory.csv").write_text(DIRECTORY)
    gw = make_milter({"directory": {"file": str(tmp_path / "directory.csv")},
                      "checks": {"bcc": {"action": "rewrite", "mode": "split"}}})
    assert gw.send(bulk(PARENTS[:4]), recipients=tuple(PARENTS[:4]))[0] == 250
    [got] = sink.wait_for(1)   # one message, every parent on its envelope, none shown
    assert sorted(got.recipients) == sorted(PARENTS[:4])
    assert shown(got.data) == {"teacher@example.sch.uk"}


def test_bytes_that_are_not_the_protocol_drop_that_connection_only(make_milter, sink):
    gw = make_milter()
    for junk in (b"GET / HTTP/1.0\r\n\r\n", b"\xff\xff\xff\xff" + b"x" * 64,
                 b"\x00\x00\x00\x05L\x00\x00\x00\x00"):   # a header before negotiating
        with socket.create_connection(("127.0.0.1", gw.milter_port), timeout=10) as s:
            s.sendall(junk)
            assert s.recv(100) == b""   # closed, with no reply that could be taken as "accept"
    assert gw.proc.poll() is None
    assert gw.send(message())[0] == 250   # and the MTA's own connections still work
    assert b"X-Mailguard: v=1;" in sink.wait_for(1)[0].data
    assert "Traceback" not in gw.log()


def test_sighup_applies_a_new_config_to_the_next_message(make_milter, sink):
    gw = make_milter()
    assert gw.send(message(from_="head.teacher@gmail.com"))[0] == 550
    gw.config["checks"]["identity"] = {"action": "off"}
    gw.write_config()
    gw.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while '"reloaded"' not in gw.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gw.send(message(from_="head.teacher@gmail.com"))[0] == 250
    assert len(sink.wait_for(1)) == 1 and gw.proc.poll() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small disk needs root")
def deferred_not_discarded(gw, sink) -> None:
    """A message the milter must hold but cannot store: Postfix's client gets a 4xx and
    keeps it, nothing reaches the sink, and the milter never said discard."""
    with pytest.raises(smtplib.SMTPDataError) as deferred, gw.client() as c:
        c.sendmail("teacher@example.sch.uk", ["parent@gmail.com"],
                   message(from_="head@gmail.com", subject="Would be held"))
    assert deferred.value.smtp_code == 451
    assert b"could not store this message for review" in deferred.value.smtp_error
    time.sleep(1)
    assert [b"Would be held" in m.data for m in sink.messages] == [False]
    assert "milter-discard" not in gw.postfix.log()


@pytest.mark.sqlite_only   # the data folder's disk; the shared store's refusal is the next test
def test_a_hold_that_cannot_be_written_is_never_discarded(make_milter, sink, tmp_path):
    """Held first, discarded after, never the other way round: with the data folder's disk
    full, Postfix's client gets a 4xx and keeps the message; nothing reaches the sink."""
    from test_full_disk import fill

    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        gw = make_milter({"storage": {"data_dir": str(disk / "var")},
                          "checks": {"identity": {"action": "quarantine"}}})
        assert gw.send(message())[0] == 250   # a working milter first
        fill(disk)
        deferred_not_discarded(gw, sink)
        gw.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_hold_the_shared_store_refuses_is_never_discarded(make_milter, sink, postgres, tmp_path):
    """The same on PostgreSQL: a store that refuses the hold's transaction (here a trigger, as
    a full disk or a read-only standby would) gives Postfix's client a 4xx, not a discard."""
    import psycopg

    secret = tmp_path / "pg.password"
    secret.write_text(postgres.password + "\n")
    secret.chmod(0o600)
    url = postgres.fresh_database()
    gw = make_milter({"storage": {"url": url, "password_file": str(secret)},
                      "checks": {"identity": {"action": "quarantine"}}})
    assert gw.send(message())[0] == 250
    with psycopg.connect(url, password=postgres.password, autocommit=True) as db:
        db.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'could not extend file'; END $$")
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON quarantine "
                   "FOR EACH ROW EXECUTE FUNCTION refuse()")
    deferred_not_discarded(gw, sink)
    with psycopg.connect(url, password=postgres.password) as db:
        assert db.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM held_files").fetchone() == (0,)
