"""Confidential attachments over the real SMTP path: pupil data leaving unencrypted is held
(or refused with how to encrypt it), encrypted is delivered and logged, free-mail is its own
finding; and the identifier checks that decide it, validated rather than shape-matched."""

from __future__ import annotations

import base64

import filemaker as fm
import pytest
from conftest import CORPUS, ROOT
from test_files import smime_enveloped

from mailguard.text import identifiers

CONFIDENTIAL = {"checks": {"confidential": {"action": "quarantine"}}}


def test_an_unencrypted_pupil_list_to_another_school_is_held_naming_file_and_signal(
        make_gateway, sink):
    gw = make_gateway(CONFIDENTIAL)
    code, text = gw.send(fm.mail_with({"Year 7.xlsx": fm.xlsx()}),
                         recipients=("head@otherschool.org.uk",))
    assert code == 250 and b"Held for review" in text
    [event] = gw.events()
    assert event["verdict"] == "quarantined"
    assert event["checks"] == ["confidential.unencrypted"]
    shown = gw.cli("quarantine", "show", event["id"]).stdout
    assert "Year 7.xlsx" in shown and "6 valid UPNs" in shown
    assert "6 rows with columns" in shown and "SEN" in shown
    assert "H801200001001" not in gw.cli("events", "--since", "1d", "--json").stdout
    assert not sink.messages


def test_the_same_list_encrypted_is_delivered_and_logged(make_gateway, sink):
    gw = make_gateway(CONFIDENTIAL)
    raw = fm.mail_with({"Year 7.xlsx": fm.office_encrypted(fm.xlsx())})
    code, _ = gw.send(raw, recipients=("head@otherschool.org.uk",))
    assert code == 250
    [got] = sink.wait_for(1)
    assert got.data.endswith(raw)
    [event] = gw.events()
    # An encrypted file cannot be read, so there is nothing to log about its contents.
    assert event["verdict"] == "delivered" and event["checks"] == []


def test_an_encrypted_but_marked_file_is_delivered_with_a_log_entry(make_gateway, sink):
    gw = make_gateway(CONFIDENTIAL)
    raw = fm.mail_with({"CONFIDENTIAL child protection notes.pdf":
                        fm.pdf("notes", _tmp(gw), encrypt="user")})
    assert gw.send(raw, recipients=("social.care@county.gov.uk",))[0] == 250
    sink.wait_for(1)
    [event] = gw.events()
    assert event["verdict"] == "delivered" and event["checks"] == ["confidential.encrypted"]


def _tmp(gw):
    return gw.folder


def test_reject_mode_tells_the_teacher_how_to_encrypt(make_gateway):
    gw = make_gateway({"checks": {"confidential": {"action": "reject"}}})
    code, text = gw.send(fm.mail_with({"year7.csv": fm.csv_export()}),
                         recipients=("trips@coachcompany.co.uk",))
    assert code == 550
    reply = text.decode()
    assert "year7.csv holds confidential or personal data" in reply
    assert "encrypt the attachment with a password" in reply and "another route" in reply
    assert "vale section 5.1" in reply


def test_school_data_to_a_gmail_address_is_its_own_finding(make_gateway):
    gw = make_gateway(CONFIDENTIAL)
    raw = fm.mail_with({"Year 7.xlsx": fm.office_encrypted(fm.xlsx())}, to="me@gmail.com",
                       subject="CONFIDENTIAL - Year 7 SEN list")
    code, text = gw.send(raw, recipients=("me@gmail.com",))
    assert code == 250 and b"Held for review" in text
    [event] = gw.events()
    assert sorted(event["checks"]) == ["confidential.encrypted", "confidential.freemail"]


def test_inside_the_organisation_nothing_is_flagged(make_gateway, sink):
    gw = make_gateway(CONFIDENTIAL)
    assert gw.send(fm.mail_with({"Year 7.xlsx": fm.xlsx()}),
                   recipients=("senco@example.sch.uk",))[0] == 250
    sink.wait_for(1)
    assert gw.events()[0]["checks"] == []


def test_ordinary_attachments_leave_freely(make_gateway, sink):
    gw = make_gateway(CONFIDENTIAL)
    raw = fm.mail_with({"menu.docx": fm.docx_file("Lunch menu: pasta bake, fish on Friday."),
                        "letter.pdf": fm.pdf("Dear parents, the trip is on Friday.", gw.folder)})
    assert gw.send(raw, recipients=("parent@gmail.com",))[0] == 250
    sink.wait_for(1)
    assert gw.events()[0]["checks"] == []


def test_identifiers_typed_into_the_email_itself_are_found(make_gateway, sink):
    gw = make_gateway(CONFIDENTIAL)
    raw = fm.mail_with({}, body="Her NI number is JT 12 34 56 C and DOB: 12/03/1990.\n")
    assert gw.send(raw, recipients=("payroll@agency.co.uk",))[0] == 250
    news = fm.mail_with({}, body="Our baby girl was born on 3/10/2026, 7 lb 2 oz!\n")
    assert gw.send(news, recipients=("friend@gmail.com",))[0] == 250
    sink.wait_for(1)
    assert [e["checks"] for e in gw.events()] == [["confidential.in_body"], []]


def test_a_wholly_encrypted_message_is_not_second_guessed(make_gateway, sink):
    gw = make_gateway(CONFIDENTIAL)
    body = smime_enveloped(fm.csv_export())
    raw = (b"From: teacher@example.sch.uk\r\nTo: head@otherschool.org.uk\r\nSubject: list\r\n"
           b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <e1@example.sch.uk>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data;"
           b" name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(body).replace(b"\n", b"\r\n"))
    assert gw.send(raw, recipients=("head@otherschool.org.uk",))[0] == 250
    sink.wait_for(1)
    assert gw.events()[0]["checks"] == []


def test_attachment_text_is_read_by_the_language_check(make_gateway):
    gw = make_gateway({"checks": {"language": {"action": "log", "folder": str(ROOT / "wordlists"),
                                               "categories": {
        "threats": {"high": "quarantine"}}}}})
    raw = fm.mail_with({"reply.docx": fm.docx_file("If you do that again I will kill you.")})
    code, text = gw.send(raw)
    assert code == 250 and b"Held for review" in text
    [event] = gw.events()
    assert {c.rpartition(":")[0] for c in event["checks"]} == {"language.threats"}
    assert "attachment reply.docx" in gw.cli("quarantine", "show", event["id"]).stdout


@pytest.mark.parametrize("upn, valid", [
    ("H801200001001", True),    # the DfE guide's worked example
    ("H801200001002", False), ("A801200001001", False),
    ("A313207810015", True), ("A999999609170", False),  # MTC fixtures: mostly invalid letters
    ("X801200001002", True), ("I801200001001", False)])
def test_upn_check_letters(upn, valid):
    assert identifiers.upn_valid(upn) is valid


def test_uln_nhs_and_national_insurance_rules():
    # 10x1 + 9x2 + ... + 2x9 = 210; 210 mod 11 = 1; 10 - 1 = 9
    assert identifiers.uln_valid("1234567899") and not identifiers.uln_valid("1234567898")
    assert identifiers.nhs_valid("9434765919") and not identifiers.nhs_valid("9434765918")
    found = identifiers.Signals()
    identifiers.scan_text("Order 9434765919 for the NI: AB123456C; specimen QQ123456C, "
                        "unallocated GB123456A, AO123456B; NHS 943 476 5919, ULN: 1234567899",
                        found)
    assert found.identifiers == {"National Insurance number": 1, "NHS number": 1, "ULN": 1}


def test_markings_in_running_text_count_only_in_capitals():
    lower, upper = identifiers.Signals(), identifiers.Signals()
    identifiers.scan_text("This email is confidential and meant for you.", lower)
    identifiers.scan_text("OFFICIAL-SENSITIVE\nReview meeting", upper)
    assert not lower and upper.markings == {"OFFICIAL-SENSITIVE"}


def test_a_forwarded_message_counts_as_quoted_for_language(make_gateway, sink):
    """A teacher forwarding a parent's threatening email to the head, as an attachment, is
    judged like one forwarding it inline: the threat counts one severity lower."""
    gw = make_gateway({"checks": {"language": {"action": "log", "folder": str(ROOT / "wordlists"),
                                               "categories": {"threats": {"high": "quarantine"}}}}})
    parent = fm.mail_with({}, body="If you do that again I will kill you.\n")
    raw = fm.mail_with({"parent.eml": parent}, body="See below: what should we do?\n").replace(
        b"Content-Type: application/octet-stream", b"Content-Type: message/rfc822", 1)
    assert gw.send(raw, recipients=("head@example.sch.uk",))[0] == 250
    sink.wait_for(1)
    [event] = gw.events()
    assert event["verdict"] == "delivered"
    assert {c.rpartition(":")[0] for c in event["checks"]} == {"language.threats"}


def test_a_marked_message_holds_its_files_but_not_its_signature_logo(make_gateway, sink):
    gw = make_gateway(CONFIDENTIAL)
    logo = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    marked = "CONFIDENTIAL: strategy review"
    assert gw.send(fm.mail_with({"logo.png": logo}, subject=marked),
                   recipients=("governor@gmail.com",))[0] == 250
    sink.wait_for(1)
    code, text = gw.send(fm.mail_with({"logo.png": logo, "notes.docx": fm.docx_file("Plans")},
                                      subject=marked), recipients=("governor@county.gov.uk",))
    assert code == 250 and b"Held for review" in text
    first, second = gw.events(at_least=2)
    assert first["checks"] == [] and second["checks"] == ["confidential.unencrypted"]
    assert "notes.docx holds" in gw.cli("quarantine", "show", second["id"]).stdout


def test_a_parents_own_gmail_is_not_a_personal_account_finding(make_gateway, tmp_path):
    """The free-mail rule is about school data leaving for staff's own accounts; a parent on
    Gmail is reached there. The report is still held for being unencrypted."""
    (tmp_path / "directory.csv").write_text("email,role,name\nmum@gmail.com,parent,A Parent\n")
    gw = make_gateway({**CONFIDENTIAL, "directory": {"file": str(tmp_path / "directory.csv")}})
    report = {"Amelia EHCP review.docx": fm.docx_file("EHCP review for Amelia, DOB: 12/03/2014")}
    gw.send(fm.mail_with(report), recipients=("mum@gmail.com",))
    gw.send(fm.mail_with(report), recipients=("me.teacher@gmail.com",))
    parent, own = gw.events(at_least=2)
    assert parent["checks"] == ["confidential.unencrypted"]
    assert sorted(own["checks"]) == ["confidential.freemail", "confidential.unencrypted"]


def test_a_pgp_mime_encrypted_message_is_delivered_untouched(make_gateway, sink, tmp_path):
    gw = make_gateway({**CONFIDENTIAL, "checks": {"confidential": {"action": "quarantine"},
                                                   "attachments": {"action": "reject"}}})
    armour = fm.gpg_encrypted(fm.csv_export(), tmp_path, armour=True).replace(b"\n", b"\r\n")
    raw = (b"From: teacher@example.sch.uk\r\nTo: head@otherschool.org.uk\r\nSubject: list\r\n"
           b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <p1@example.sch.uk>\r\n"
           b'MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; boundary="b1";\r\n'
           b' protocol="application/pgp-encrypted"\r\n\r\n--b1\r\n'
           b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\n"
           b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
           + armour + b"\r\n--b1--\r\n")
    assert gw.send(raw, recipients=("head@otherschool.org.uk",))[0] == 250
    [got] = sink.wait_for(1)
    assert got.data.endswith(raw)
    assert gw.events()[0]["checks"] == []


def _archives(tmp, members: dict[str, bytes]) -> dict[str, bytes]:
    """The same innocuous-looking files as a plain zip, 7z and RAR."""
    import subprocess

    work = tmp / "archive-members"
    work.mkdir(exist_ok=True)
    for name, data in members.items():
        (work / name).write_bytes(data)
    out = {"zip": fm.zip_files(members, tmp)}
    for kind in ("7z",):
        target = tmp / f"out.{kind}"
        target.unlink(missing_ok=True)
        subprocess.run([fm.seven_zip(), "a", f"-t{kind}", str(target), *members], cwd=work,
                       check=True, capture_output=True)
        out[kind] = target.read_bytes()
    return out


PLAIN = {"notes.txt": b"Meeting on Tuesday.\n", "list.txt": b"Apples, pears.\n"}


@pytest.mark.parametrize("name", ["CONFIDENTIAL SEN register", "OFFICIAL-SENSITIVE pupils",
                                  "Child protection notes"])
@pytest.mark.parametrize("kind", ["zip", "7z"])
def test_an_archive_whose_name_marks_it_confidential_must_be_encrypted(
        make_gateway, sink, tmp_path, name, kind):
    gw = make_gateway(CONFIDENTIAL)
    data = _archives(tmp_path, PLAIN)[kind]
    code, text = gw.send(fm.mail_with({f"{name}.{kind}": data}, subject="Files"),
                         recipients=("head@otherschool.org.uk",))
    assert code == 250 and b"Held for review" in text, text
    [event] = gw.events()
    assert event["checks"] == ["confidential.unencrypted"]
    assert f"{name}.{kind} holds confidential" in gw.cli("quarantine", "show", event["id"]).stdout
    assert not sink.messages


def test_the_same_archive_encrypted_whole_goes_and_partly_encrypted_is_held(
        make_gateway, sink, tmp_path):
    import subprocess

    gw = make_gateway(CONFIDENTIAL)
    locked = fm.zip_files(PLAIN, tmp_path, password=fm.PASSWORD)
    code, _ = gw.send(fm.mail_with({"CONFIDENTIAL SEN register.zip": locked}),
                      recipients=("head@otherschool.org.uk",))
    assert code == 250
    sink.wait_for(1)
    # One member encrypted, the other plain, as `zip -P` then a plain `zip` make it.
    work = tmp_path / "zipwork"
    (work / "extra.txt").write_bytes(b"Plain for anyone.\n")
    subprocess.run(["zip", "-q", str(tmp_path / "out.zip"), "extra.txt"], cwd=work, check=True)
    partial = (tmp_path / "out.zip").read_bytes()
    code, text = gw.send(fm.mail_with({"CONFIDENTIAL SEN register.zip": partial}),
                         recipients=("head@otherschool.org.uk",))
    assert code == 250 and b"Held for review" in text
    events = gw.events()
    assert [e["checks"] for e in events] == [["confidential.encrypted"],
                                             ["confidential.unencrypted"]]


def test_a_plainly_named_archive_of_plain_files_still_goes(make_gateway, sink, tmp_path):
    gw = make_gateway(CONFIDENTIAL)
    code, _ = gw.send(fm.mail_with({"photos of the fair.zip": _archives(tmp_path, PLAIN)["zip"]}),
                      recipients=("head@otherschool.org.uk",))
    assert code == 250
    sink.wait_for(1)
    assert gw.events()[0]["checks"] == []


@pytest.mark.skipif(not (CORPUS / "files" / "rar").is_dir(), reason="../shared/corpus is not here")
@pytest.mark.parametrize(("file", "checks"), [
    ("libarchive-test_read_format_rar_encryption_partially.rar", ["confidential.unencrypted"]),
    ("libarchive-test_read_format_rar_encryption_header.rar", ["confidential.encrypted"])])
def test_a_rar_marked_confidential_is_held_unless_encrypted_whole(make_gateway, sink, file, checks):
    gw = make_gateway(CONFIDENTIAL)
    data = (CORPUS / "files" / "rar" / file).read_bytes()
    code, _ = gw.send(fm.mail_with({"CONFIDENTIAL SEN register.rar": data}, subject="Files"),
                      recipients=("head@otherschool.org.uk",))
    assert code == 250
    assert gw.events()[0]["checks"] == checks
