"""Attachment rules over the real SMTP path: programs, scripts, disguises, macros, bombs and
unreadable files are refused or held with a reason a teacher can act on; clean files pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import filemaker as fm

RULES = {"checks": {"attachments": {"action": "reject"}}}
PROGRAM = Path(shutil.which("true") or "/bin/true").read_bytes()


def test_a_clean_attachment_is_delivered_untouched(make_gateway, sink):
    gw = make_gateway(RULES)
    raw = fm.mail_with({"minutes.docx": fm.docx_file("PTA minutes")})
    code, _ = gw.send(raw)
    assert code == 250
    [got] = sink.wait_for(1)
    assert got.data.endswith(raw)
    [event] = gw.events()
    assert event["verdict"] == "delivered" and not event["checks"]


def test_a_program_disguised_as_a_pdf_is_refused_with_the_reason(make_gateway, sink):
    gw = make_gateway(RULES)
    code, text = gw.send(fm.mail_with({"invoice.pdf": PROGRAM}))
    assert code == 550
    reply = text.decode()
    assert "invoice.pdf is a program" in reply and "named .pdf" in reply
    assert "soke" in reply          # the clause
    [event] = gw.events()
    assert set(event["checks"]) == {"attachments.executable", "attachments.disguised"}
    assert not sink.messages


def test_a_script_inside_a_zip_is_refused(make_gateway, tmp_path):
    gw = make_gateway(RULES)
    js = fm.zip_files({"photos.js": b"WScript.Echo('hi');\n"}, tmp_path)
    code, text = gw.send(fm.mail_with({"photos.zip": js}))
    assert code == 550
    assert "photos.zip > photos.js is a script" in text.decode()


def test_macros_are_held_and_a_bomb_is_held(make_gateway, tmp_path):
    gw = make_gateway({**RULES, "inspection": {"max_expanded": "2MiB"}})
    docm = fm.with_macros(fm.docx_file("Reading list"))
    code, text = gw.send(fm.mail_with({"reading.docm": docm}))
    assert code == 250 and b"Held for review" in text
    (tmp_path / "zeros").write_bytes(b"\0" * (4 * 1024**2))
    fm.run("zip", "-q", "big.zip", "zeros", cwd=tmp_path)
    code, text = gw.send(fm.mail_with({"big.zip": (tmp_path / "big.zip").read_bytes()}))
    assert code == 250 and b"Held for review" in text
    rules = [e["checks"] for e in gw.events()]
    assert sorted(rules) == [["attachments.bomb"], ["attachments.macros"]]


def test_an_unreadable_file_is_held_never_waved_through(make_gateway, sink):
    gw = make_gateway(RULES)
    broken = fm.xlsx()[:3000]
    code, text = gw.send(fm.mail_with({"marks.xlsx": broken}))
    assert code == 250 and b"Held for review" in text
    [event] = gw.events()
    assert event["checks"] == ["attachments.uninspectable"]
    assert not sink.messages
    held = gw.cli("quarantine", "list", "--json").stdout
    assert event["id"] in held


def test_rules_can_be_turned_down_one_by_one(make_gateway, sink):
    gw = make_gateway({"checks": {"attachments": {"action": "reject", "macros": "log"}}})
    code, _ = gw.send(fm.mail_with({"reading.docm": fm.with_macros(fm.docx_file("x"))}))
    assert code == 250
    sink.wait_for(1)
    [event] = gw.events()
    assert event["verdict"] == "delivered" and event["checks"] == ["attachments.macros"]


def test_a_bad_inspection_bound_is_a_config_error(make_gateway):
    gw = make_gateway({"inspection": {"max_depth": 0}}, start=False)
    out = gw.cli("check-config")
    assert out.returncode == 2
    assert out.stderr.strip().endswith("inspection.max_depth: must be at least 1, got 0")


def test_a_file_too_big_to_read_whole_is_held_not_half_read(make_gateway, sink):
    gw = make_gateway({**RULES, "inspection": {"max_text": "64KiB", "max_rows": 50}})
    long_csv = fm.csv_export(fm.PUPILS * 3000)           # 18,000 rows, about 1 MB of text
    code, text = gw.send(fm.mail_with({"all.csv": long_csv}))
    assert code == 250 and b"Held for review" in text
    sheet = fm.xlsx(fm.PUPILS * 20)                        # 120 rows, a small file
    code, text = gw.send(fm.mail_with({"all.xlsx": sheet}))
    assert code == 250 and b"Held for review" in text
    events = gw.events()
    assert [e["checks"] for e in events] == [["attachments.partial"]] * 2
    shown = gw.cli("quarantine", "show", events[1]["id"]).stdout
    assert "more than 50 rows" in shown
    assert not sink.messages


def test_it_can_block_or_allow_names_but_not_a_program(make_gateway, sink, tmp_path):
    gw = make_gateway({"checks": {"attachments": {
        "action": "reject", "block_extensions": [".one"], "allow_extensions": ["sh", "exe"]}}})
    assert gw.send(fm.mail_with({"notes.one": b"OneNote bytes"}))[0] == 550
    assert gw.send(fm.mail_with({"build.sh": b"#!/bin/sh\nmake\n"}))[0] == 250
    assert gw.send(fm.mail_with({"tool.exe": PROGRAM}))[0] == 550   # the bytes decide
    sink.wait_for(1)
    assert [e["checks"] for e in gw.events()] == [
        ["attachments.script"], [], ["attachments.executable"]]


def test_a_bad_extension_list_is_a_config_error(make_gateway):
    gw = make_gateway({"checks": {"attachments": {"block_extensions": ["*.exe"]}}}, start=False)
    out = gw.cli("check-config")
    assert out.returncode == 2
    assert "checks.attachments.block_extensions: must list extensions" in out.stderr
