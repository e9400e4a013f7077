"""Held mail: durable before 250, survives restarts, and the CLI's release/reject/delete/purge."""

from __future__ import annotations

import json
import re
import shutil
import stat
import time

import pytest
from conftest import message

HOLD = {"checks": {"identity": {"action": "quarantine"}}}


def hold_one(gw, recipients: tuple[str, ...] = ("parent@gmail.com",)) -> str:
    code, text = gw.send(message(from_="head@gmail.com"), recipients=recipients)
    assert code == 250, text
    m = re.search(rb"reference (\w+)", text)
    assert m, text
    return m.group(1).decode()


def listed(gw, status: str = "held") -> list[dict]:
    out = gw.cli("quarantine", "list", "--status", status, "--json")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.fixture
def held_gw(make_gateway):
    return make_gateway(HOLD)


@pytest.mark.sqlite_only   # the data folder's own files (test_store: the shared store's)
def test_held_mail_is_on_disk_protected_and_explained(held_gw, sink):
    qid = hold_one(held_gw)
    assert sink.messages == []
    path = held_gw.data_dir / "quarantine" / f"{qid}.eml"
    sealed = path.read_bytes()
    assert sealed.startswith(b"MGQ1") and b"packed lunch" not in sealed and b"head@" not in sealed
    shown = held_gw.cli("quarantine", "show", qid, "--raw")
    assert shown.stdout == message(from_="head@gmail.com").decode().replace("\r\n", "\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(held_gw.data_dir.stat().st_mode) == 0o700
    [item] = listed(held_gw)
    assert item["id"] == qid and item["rules"] == ["identity.foreign_from"]
    shown = held_gw.cli("quarantine", "show", qid)
    assert "identity.foreign_from (quarantine)" in shown.stdout
    assert "leventhorpe 'Security/Appropriate Use'" in shown.stdout
    [event] = held_gw.events()
    assert (event["verdict"], event["quarantine_id"]) == ("quarantined", qid)
    trail = json.loads(held_gw.cli("quarantine", "show", qid, "--json").stdout)["audit"]
    assert [a["action"] for a in trail] == ["show", "show", "show"]


def test_quarantine_survives_restart_and_release_delivers_once(held_gw, sink):
    qid = hold_one(held_gw, recipients=("a@gmail.com", "b@yahoo.com"))
    held_gw.restart()
    assert [i["id"] for i in listed(held_gw)] == [qid]
    out = held_gw.cli("quarantine", "release", qid, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["released"] is True
    [got, _notice] = sink.wait_for(2)
    assert got.recipients == ["a@gmail.com", "b@yahoo.com"]
    assert got.data.endswith(message(from_="head@gmail.com"))
    assert listed(held_gw) == [] and [i["id"] for i in listed(held_gw, "released")] == [qid]
    # The released copy looping back through the gateway is not held again.
    assert held_gw.send(got.data)[0] == 250
    assert len(sink.wait_for(3)) == 3
    assert held_gw.cli("quarantine", "release", qid).returncode == 1  # not held any more


def test_release_keeps_refused_recipients_held_with_the_upstream_reply(held_gw, sink):
    qid = hold_one(held_gw, recipients=("ok@gmail.com", "gone@gmail.com"))
    sink.handler.refuse["gone@gmail.com"] = "550 5.1.1 no such user"
    out = held_gw.cli("quarantine", "release", qid)
    assert out.returncode == 1
    assert "still held for: gone@gmail.com (550 5.1.1 no such user)" in out.stdout
    assert sink.wait_for(1)[0].recipients == ["ok@gmail.com"]
    [item] = listed(held_gw)
    assert item["held_recipients"] == 1 and item["recipients"] == 2


def test_release_when_upstream_is_down_stays_held(held_gw, sink):
    qid = hold_one(held_gw)
    sink.stop()
    out = held_gw.cli("quarantine", "release", qid)
    assert out.returncode == 1 and "unavailable" in out.stdout
    assert [i["id"] for i in listed(held_gw)] == [qid]


def test_reject_tells_the_sender_with_the_note(make_gateway, sink):
    gw = make_gateway(HOLD)
    _, text = gw.send(message(from_="someone@gmail.com"), sender="teacher@example.sch.uk")
    qid = re.search(rb"reference (\w+)", text).group(1).decode()
    out = gw.cli("quarantine", "reject", qid, "--note", "Please use your school address.")
    assert out.returncode == 0, out.stderr
    [notice] = sink.wait_for(1)
    assert notice.sender == "<>" and notice.recipients == ["teacher@example.sch.uk"]
    assert b"Please use your school address." in notice.data
    assert qid.encode() in notice.data and b"leventhorpe" in notice.data
    assert [i["id"] for i in listed(gw, "rejected")] == [qid]


def test_delete_removes_the_content(held_gw, sink):
    qid = hold_one(held_gw)
    assert held_gw.cli("quarantine", "delete", qid).returncode == 0
    assert not held_gw.holds_content(qid)
    assert [i["id"] for i in listed(held_gw, "deleted")] == [qid]
    actions = [a["action"] for a in json.loads(
        held_gw.cli("quarantine", "show", qid, "--json").stdout)["audit"]]
    assert "delete" in actions


def test_purge_applies_retention(held_gw, sink):
    old, new = hold_one(held_gw), hold_one(held_gw)
    held_gw.events()
    held_gw.sql("UPDATE quarantine SET ts = ts - 31 * 86400 WHERE id = ?", (old,))
    held_gw.sql("UPDATE events SET ts = ts - 91 * 86400 WHERE quarantine_id = ?", (old,))
    out = held_gw.cli("purge", "--json")
    assert json.loads(out.stdout) == {"events_deleted": 1, "quarantine_expired": 1}
    assert [i["id"] for i in listed(held_gw, "expired")] == [old]
    assert [i["id"] for i in listed(held_gw)] == [new]
    assert not held_gw.holds_content(old) and held_gw.holds_content(new)


def test_unparseable_mail_is_held_not_passed(gateway, sink):
    code, text = gateway.send(b"this is not a header line\r\nFrom: x@example.sch.uk\r\n\r\nbody\r\n")
    assert code == 250 and b"Held for review" in text
    [item] = listed(gateway)
    assert item["reason"] == "unparseable" and item["rules"] == ["mime.unparseable"]
    shown = gateway.cli("quarantine", "show", item["id"]).stdout
    assert "a line in the header block is not a header" in shown
    assert sink.messages == []


def test_unparseable_can_be_configured_to_tempfail(make_gateway, sink):
    gw = make_gateway({"server": {"unparseable": "tempfail"}})
    code, text = gw.send(b"garbage without headers\r\n\r\nbody\r\n")
    assert code == 451 and b"could not read this message" in text
    assert listed(gw) == []


@pytest.mark.sqlite_only   # a data folder that refuses the write (test_cluster: a store away)
def test_quarantine_write_failure_is_451_not_250(held_gw, sink):
    folder = held_gw.data_dir / "quarantine"
    shutil.rmtree(folder)
    folder.write_text("not a folder")  # the disk refuses the write
    code, text = held_gw.send(message(from_="head@gmail.com"))
    assert code == 451 and b"could not store" in text
    assert sink.messages == []


def test_the_running_gateway_applies_retention_itself(held_gw, sink):
    old = hold_one(held_gw)
    held_gw.stop()
    held_gw.sql("UPDATE quarantine SET ts = ts - 31 * 86400 WHERE id = ?", (old,))
    held_gw.start()
    deadline = time.monotonic() + 15   # retention runs as the gateway starts
    while not listed(held_gw, "expired") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [i["id"] for i in listed(held_gw, "expired")] == [old]
    assert not held_gw.holds_content(old)
