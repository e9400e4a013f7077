"""Forced BCC for bulk parent mail (bourne appendix B): parents never see each other's addresses."""

from __future__ import annotations

import email
import json
import re
import smtplib
import subprocess
import sys
from email.policy import default as default_policy
from email.utils import getaddresses

import pytest
from conftest import ROOT, message
from postfix import Postfix, available

from mailguard import mime
from mailguard.rewrite.recipients import hide, only_to

PARENTS = [f"parent{i}@gmail.com" for i in range(1, 31)]
DIRECTORY = "email,role,name,pupils\n" + "".join(
    f"{p},parent,Parent {i},Pupil {i}\n" for i, p in enumerate(PARENTS, 1)) + (
    "head@example.sch.uk,staff,Head,\n"
    "pupil1@example.sch.uk,pupil,A Pupil,\n"
    "supplier@catering.co.uk,supplier,Catering,\n")


def shown(raw: bytes) -> set[str]:
    msg = email.message_from_bytes(raw, policy=default_policy)
    pairs = getaddresses(msg.get_all("To", []) + msg.get_all("Cc", []))
    return {a.lower() for _, a in pairs if a}


def bulk(to: list[str], cc: list[str] = (), from_: str = "teacher@example.sch.uk") -> bytes:
    extra = f"Cc: {', '.join(cc)}\r\n" if cc else ""
    return message(from_=from_, to=", ".join(to), extra_headers=extra,
                   subject="Year 6 trip", body="Coaches leave at 9.\r\n")


@pytest.fixture
def bcc_gateway(make_gateway, tmp_path):
    (tmp_path / "directory.csv").write_text(DIRECTORY)

    def make(**bcc):
        return make_gateway({"directory": {"file": str(tmp_path / "directory.csv")},
                             "checks": {"bcc": {"action": "rewrite", **bcc}}})
    return make


def test_hide_changes_only_to_and_cc_and_says_how_many_moved():
    raw = bulk(["Parent One <parent1@gmail.com>", "head@example.sch.uk", "parent2@gmail.com"],
               cc=["parent3@gmail.com"])
    out = hide(raw, frozenset({"parent1@gmail.com", "parent2@gmail.com", "parent3@gmail.com"}),
               to="teacher@example.sch.uk", note="3 recipients moved")
    assert shown(out) == {"head@example.sch.uk"}
    assert b"X-Mailguard-Bcc: 3 recipients moved\r\n" in out
    assert b"Cc:" not in out
    # Everything else is byte for byte: the other headers, in order, and the body.
    strip = re.compile(rb"^(To|Cc|X-Mailguard-Bcc):.*\r\n(?:[ \t].*\r\n)*", re.M)
    assert strip.sub(b"", out) == strip.sub(b"", raw)


def test_to_becomes_the_sender_or_undisclosed_when_nobody_visible_is_left():
    raw = bulk(PARENTS[:3])
    out = hide(raw, frozenset(PARENTS[:3]), to="teacher@example.sch.uk", note="x")
    assert shown(out) == {"teacher@example.sch.uk"}
    out = hide(raw, frozenset(PARENTS[:3]), to="undisclosed-recipients:;", note="x")
    assert b"To: undisclosed-recipients:;\r\n" in out and shown(out) == set()


def test_only_to_addresses_a_copy_to_one_recipient():
    out = only_to(bulk(["Parent One <parent1@gmail.com>", "parent2@gmail.com"],
                       cc=["head@example.sch.uk"]), "parent1@gmail.com")
    assert b"To: Parent One <parent1@gmail.com>\r\n" in out and b"Cc:" not in out


def test_long_to_fields_are_folded():
    out = hide(bulk(PARENTS[:20] + [f"staff{i}@example.sch.uk" for i in range(20)]),
               frozenset(PARENTS[:20]), to="x", note="20 moved")
    to = re.search(rb"^To:.*\r\n(?:[ \t].*\r\n)*", out, re.M).group(0)
    assert all(len(line) <= 78 for line in to.split(b"\r\n"))
    assert len(mime.addresses(mime.parse_headers(to), "To")) == 20


def test_gateway_moves_parents_out_of_to_cc_keeping_every_envelope_recipient(bcc_gateway, sink):
    gw = bcc_gateway()
    recipients = (*PARENTS[:5], "head@example.sch.uk")
    code, _ = gw.send(bulk([*PARENTS[:4], "head@example.sch.uk"], cc=[PARENTS[4]]),
                      recipients=recipients)
    assert code == 250
    [got] = sink.wait_for(1)
    assert sorted(got.recipients) == sorted(recipients)  # the envelope is untouched
    assert shown(got.data) == {"head@example.sch.uk"}
    assert b"X-Mailguard-Bcc: 5 recipients moved from To/Cc to Bcc" in got.data
    [event] = gw.events()
    assert event["checks"] == ["bcc.moved"]
    logged = gw.log() + json.dumps(event)
    assert "parent1@gmail.com" not in logged  # a count, never the addresses


def test_staff_and_a_single_parent_stay_visible(bcc_gateway, sink):
    gw = bcc_gateway()
    raw = bulk(["parent1@gmail.com", "head@example.sch.uk"])
    assert gw.send(raw, recipients=("parent1@gmail.com", "head@example.sch.uk"))[0] == 250
    assert sink.wait_for(1)[0].data.endswith(raw)


def test_outsiders_from_different_mailboxes_count_without_a_directory(make_gateway, sink):
    gw = make_gateway({"checks": {"bcc": {"action": "rewrite"}}})
    raw = bulk(["a@gmail.com", "A@GMAIL.com"])  # one mailbox written twice: not exposure
    assert gw.send(raw, recipients=("a@gmail.com",))[0] == 250
    raw2 = bulk(["a@gmail.com", "b@yahoo.co.uk", "head@example.sch.uk"])
    assert gw.send(raw2, recipients=("a@gmail.com", "b@yahoo.co.uk"))[0] == 250
    first, second = sink.wait_for(2)
    assert first.data.endswith(raw)
    assert shown(second.data) == {"head@example.sch.uk"}


@pytest.mark.parametrize(("action", "code", "words"), [
    ("reject", 550, b"put parents and other outside recipients in Bcc"),
    ("quarantine", 250, b"Held for review"),
])
def test_reject_or_hold_instead_of_rewriting(bcc_gateway, sink, action, code, words):
    gw = bcc_gateway(action=action)
    got_code, text = gw.send(bulk(PARENTS[:3]), recipients=tuple(PARENTS[:3]))
    assert got_code == code and words in text
    assert sink.messages == []


def test_split_sends_each_parent_a_copy_addressed_to_them_alone(bcc_gateway, sink):
    gw = bcc_gateway(mode="split")
    sink.handler.refuse["parent3@gmail.com"] = "550 5.1.1 no such user"
    with gw.client() as c:
        c.mail("teacher@example.sch.uk")
        for p in PARENTS[:4]:
            assert c.rcpt(p)[0] == 250 or p == "parent3@gmail.com"
        code, text = c.data(bulk(PARENTS[:4]))
    assert code == 250 and b"sent as 3 separate copies" in text
    copies = sink.wait_for(3)
    assert sorted(r for m in copies for r in m.recipients) == sorted(
        ["parent1@gmail.com", "parent2@gmail.com", "parent4@gmail.com"])
    for m in copies:
        assert shown(m.data) == set(m.recipients)
    assert gw.events()[-1]["checks"] == ["bcc.split"]


def test_split_copy_refused_later_is_held_not_lost(bcc_gateway, sink):
    gw = bcc_gateway(mode="split")
    with gw.client() as c:
        c.mail("teacher@example.sch.uk")
        for p in PARENTS[:3]:
            c.rcpt(p)
        sink.handler.refuse["parent2@gmail.com"] = "452 4.2.2 mailbox full"  # after RCPT time
        code, text = c.data(bulk(PARENTS[:3]))
    assert code == 250 and b"1 held for review" in text
    assert len(sink.wait_for(2)) == 2
    held = json.loads(gw.cli("quarantine", "list", "--json").stdout)
    assert held["recipients"] == 1 and "mailbox full" in held["reason"]


def test_directory_import_maps_a_mis_export(tmp_path):
    export = tmp_path / "sims.csv"
    export.write_text("Contact Email,Relationship,Contact Name,Pupil\n"
                      "Mum@Example.com,Mother,Ann Smith,Jo Smith\n"
                      "dad@example.com,Father,Bob Smith,Jo Smith\n"
                      ",Mother,No Email,Sam\n")
    out = tmp_path / "directory.csv"
    args = [sys.executable, "-m", "mailguard", "directory", "import", str(export), "--out",
            str(out), "--column", "email=Contact Email", "--column", "role=Relationship",
            "--column", "name=Contact Name", "--column", "pupils=Pupil",
            "--role-value", "Mother=parent", "--role-value", "Father=parent"]
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines() == [
        "email,role,name,pupils", "dad@example.com,parent,Bob Smith,Jo Smith",
        "mum@example.com,parent,Ann Smith,Jo Smith"]
    bad = subprocess.run(args[:-4], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "line 2: role 'Mother' is not one of" in bad.stderr
    assert "line 3: role 'Father' is not one of" in bad.stderr and "not written" in bad.stderr
    mixed = subprocess.run(args[:-2], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert mixed.returncode == 0, mixed.stderr
    assert "skipped: " in mixed.stderr and "line 3: role 'Father'" in mixed.stderr
    assert "1 contacts (1 rows skipped" in mixed.stdout
    wrong = subprocess.run([*args[:8], "--column", "email=E-mail"], capture_output=True, text=True,
                           cwd=ROOT, timeout=60)
    assert wrong.returncode == 2 and "no column 'E-mail' for email" in wrong.stderr


needs_postfix = pytest.mark.skipif(not available() and not __import__("os").environ.get("CI"),
                                   reason="postfix is not installed (make test installs it)")


@needs_postfix
@pytest.mark.parametrize("mode", ["bcc", "split"])
def test_thirty_parents_through_a_real_postfix(bcc_gateway, sink, mode):
    gw = bcc_gateway(mode=mode)
    pf = Postfix(f"[127.0.0.1]:{gw.port}")
    pf.start()
    try:
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as c:
            c.sendmail("teacher@example.sch.uk", PARENTS, bulk(PARENTS))
        messages = sink.wait_for(1 if mode == "bcc" else 30, timeout=60)
        deliveries = sorted(r for m in messages for r in m.recipients)
        assert deliveries == sorted(PARENTS)  # 30 envelope deliveries, each exactly once
        for m in messages:
            assert not shown(m.data) & (set(PARENTS) - set(m.recipients))
    finally:
        pf.stop()


def test_a_directory_with_bad_rows_keeps_the_good_ones_and_names_the_bad(make_gateway, sink,
                                                                        tmp_path):
    (tmp_path / "directory.csv").write_text(
        "email,role,name\n" + "".join(f"{p},parent,P\n" for p in PARENTS[:3])
        + "not-an-address,parent,X\nhead@example.sch.uk,teacher,Head\n")
    gw = make_gateway({"directory": {"file": str(tmp_path / "directory.csv")},
                       "checks": {"bcc": {"action": "rewrite"}}})
    out = gw.cli("check-config")
    assert out.returncode == 0, out.stderr
    assert "directory.csv: line 5: 'not-an-address' is not an email address" in out.stdout
    assert "directory.csv: line 6: role 'teacher' is not one of" in out.stdout
    assert "directory_row_skipped" in gw.log()
    assert gw.send(bulk(PARENTS[:3]), recipients=tuple(PARENTS[:3]))[0] == 250
    [got] = sink.wait_for(1)
    assert not shown(got.data) & set(PARENTS[:3])   # the good rows are parents, now in Bcc
