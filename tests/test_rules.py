"""Every rule of every check, alone: a message that HITs it and one that MISSes it, each run
through that check's own `inspect` with only that check configured (Rspamd's habit). In
process: the config is the real loader's, the messages real MIME, the files made by the
real tools. The language check's lists and rules have their own table (language_suite);
antivirus needs clamd, so its rules are in test_antivirus.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filemaker as fm
import pytest
from conftest import ROOT, base_config, deep_update, message, toml_dump

from mailguard import config
from mailguard.checks.registry import REGISTRY
from mailguard.model import Client, Envelope, Mail

PROGRAM = Path(shutil.which("true") or "/bin/true").read_bytes()
PARENTS = ("p1@gmail.com", "p2@gmail.com", "p3@gmail.com")
COLLEAGUES = ("senco@example.sch.uk", "head@example.sch.uk")
UPN = "T204275919814"   # passes its check letter
SIGNED = (b"From: teacher@example.sch.uk\r\nTo: parent@gmail.com\r\nSubject: s\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/"
          b"pkcs7-signature\"; micalg=sha-256; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain"
          b"\r\n\r\nSigned words.\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n"
          b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n")
BARE_CR = (b"From: teacher@example.sch.uk\r\nTo: parent@gmail.com\r\nSubject: s\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=cr\r\n\r\n--cr\r\n"
           b"Content-Type: text/plain\r\n\r\nWords.\r--cr\rContent-Type: application/pdf\r\n"
           b"\r\n%PDF-1.4\r\n--cr--\r\n")


def directory(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "people.csv").write_text(
        "email,role,name,pupils\np1@gmail.com,parent,P1,Amelia Jones\n"
        "p2@gmail.com,parent,P2,Oliver Smith\n"
        "p3@gmail.com,parent,P3,\nsam.pupil@example.sch.uk,pupil,Sam\n"
        "sam.home@gmail.com,pupil,Sam\nteacher@example.sch.uk,staff,T\n")
    return {"directory": {"file": str(tmp_path / "people.csv")}}


def mail(raw: bytes, to: tuple[str, ...] = ("parent@gmail.com",),
         sender: str = "teacher@example.sch.uk") -> Mail:
    return Mail(id="RULE", envelope=Envelope(sender, to), client=Client("127.0.0.1"), raw=raw)


def bulk(to: tuple[str, ...] = PARENTS) -> Mail:
    return mail(message(to=", ".join(to), subject="Trip"), to=to)


Case = tuple[str, dict[str, Any], Callable[[Path], Mail], Callable[[Path], Mail]]
DISCLAIMERS = {"folder": str(ROOT / "config" / "disclaimers")}
LOVE = "Love you, see you tonight xx. Dinner at mum's, then the pub."
CASES: list[Case] = [
    # check.rule, its [checks.NAME] table, HIT, MISS
    ("limits.recipients", {"limits": {"max_recipients": 2}},
     lambda t: bulk(), lambda t: bulk(PARENTS[:2])),
    ("limits.rate", {"limits": {"hourly": 2}},
     lambda t: bulk(), lambda t: bulk(PARENTS[:2])),
    ("attachments.executable", {"attachments": {"action": "reject"}},
     lambda t: mail(fm.mail_with({"tool.exe": PROGRAM})),
     lambda t: mail(fm.mail_with({"minutes.docx": fm.docx_file("PTA minutes")}))),
    ("attachments.script", {"attachments": {"action": "reject"}},
     lambda t: mail(fm.mail_with({"photos.js": b"WScript.Echo('hi');\n"})),
     lambda t: mail(fm.mail_with({"photos.txt": b"WScript is a word here.\n"}))),
    ("attachments.macros", {"attachments": {"action": "reject"}},
     lambda t: mail(fm.mail_with({"reading.docm": fm.with_macros(fm.docx_file("List"))})),
     lambda t: mail(fm.mail_with({"reading.docx": fm.docx_file("List")}))),
    ("attachments.disguised", {"attachments": {"action": "reject"}},
     lambda t: mail(fm.mail_with({"report.pdf": fm.docx_file("Report")})),
     lambda t: mail(fm.mail_with({"report.docx": fm.docx_file("Report")}))),
    ("attachments.bomb", {"attachments": {"action": "reject"}},
     lambda t: mail(fm.mail_with({"big.zip": fm.zip_files({"zeros": b"\0" * 3 * 1024**2}, t)})),
     lambda t: mail(fm.mail_with({"small.zip": fm.zip_files({"zeros": b"\0" * 1024}, t)}))),
    ("attachments.partial", {"attachments": {"action": "reject"}},
     lambda t: mail(fm.mail_with({"notes.txt": b"word " * 300_000})),
     lambda t: mail(fm.mail_with({"notes.txt": b"word " * 1000}))),
    ("attachments.uninspectable", {"attachments": {"action": "reject"}},
     lambda t: mail(fm.mail_with({"marks.xlsx": fm.xlsx()[:3000]})),
     lambda t: mail(fm.mail_with({"marks.xlsx": fm.xlsx()}))),
    ("confidential.unencrypted", {"confidential": {"action": "quarantine"}},
     lambda t: mail(fm.mail_with({"year7.xlsx": fm.xlsx()}), to=("head@other.org.uk",)),
     lambda t: mail(fm.mail_with({"menu.xlsx": fm.xlsx([("Fish", "Chips")], ("Main", "Side"))}),
                    to=("head@other.org.uk",))),
    ("confidential.encrypted", {"confidential": {"action": "quarantine"}},
     lambda t: mail(fm.mail_with({"CONFIDENTIAL child protection notes.pdf": fm.pdf(
         "notes", t, encrypt="user")}), to=("social.care@county.gov.uk",)),
     lambda t: mail(fm.mail_with({"CONFIDENTIAL child protection notes.pdf": fm.pdf(
         "notes", t)}), to=("social.care@county.gov.uk",))),
    ("confidential.freemail", {"confidential": {"action": "quarantine"}},
     lambda t: mail(fm.mail_with({"year7.xlsx": fm.xlsx()}), to=("teacher.home@gmail.com",)),
     lambda t: mail(fm.mail_with({"year7.xlsx": fm.xlsx()}), to=("head@other.org.uk",))),
    ("confidential.in_body", {"confidential": {"action": "quarantine"}},
     lambda t: mail(message(body="Amelia's UPN is H801200001001.\r\n"),
                    to=("head@other.org.uk",)),
     lambda t: mail(message(body="Amelia's reading age is 11.\r\n"), to=("head@other.org.uk",))),
    ("credentials.password", {"credentials": {"action": "quarantine"}},
     lambda t: mail(message(body="Your login is asmith and the password: Sunflower23\r\n")),
     lambda t: mail(message(body="Please reset your password using the link below.\r\n"))),
    ("disclosure.personal_details", {"disclosure": {"action": "reject"}},
     lambda t: mail(message(to="p1@gmail.com", body="Text me on my mobile 07700 900123.\r\n"),
                    to=("p1@gmail.com",)),
     lambda t: mail(message(to="p1@gmail.com", body="Ring the office on 01632 960000.\r\n"),
                    to=("p1@gmail.com",))),
    ("disclosure.pupil_personal", {"disclosure": {"action": "reject"}},
     lambda t: mail(message(to="sam.home@gmail.com"), to=("sam.home@gmail.com",)),
     lambda t: mail(message(to="sam.pupil@example.sch.uk"), to=("sam.pupil@example.sch.uk",))),
    ("disclosure.to_self", {"disclosure": {"action": "reject"}},
     lambda t: mail(fm.mail_with({"plans.docx": fm.docx_file("Plans")},
                                 to="teacher@gmail.com"), to=("teacher@gmail.com",)),
     lambda t: mail(fm.mail_with({"plans.docx": fm.docx_file("Plans")},
                                 to="head@other.org.uk"), to=("head@other.org.uk",))),
    ("personal.untagged", {"personal": {"action": "log"}},
     lambda t: mail(message(to="sam@gmail.com", subject="tonight", body=LOVE)),
     lambda t: mail(message(subject="Year 7 trip", body="The coach leaves at nine.\r\n"))),
    ("personal.tagged", {"personal": {"action": "log"}},
     lambda t: mail(message(subject="Personal: tonight", body=LOVE)),
     lambda t: mail(message(subject="Personal development day", body="Agenda.\r\n"))),
    ("personal.auto_tagged", {"personal": {"action": "log", "auto_tag": True}},
     lambda t: mail(message(to="sam@gmail.com", subject="tonight", body=LOVE)),
     lambda t: mail(message(subject="Personal: tonight", body=LOVE))),
    ("disclaimer.added", {"disclaimer": {**DISCLAIMERS, "action": "log"}},
     lambda t: mail(message()), lambda t: mail(SIGNED)),
    ("disclaimer.personal_notice", {"disclaimer": {**DISCLAIMERS, "action": "log"}},
     lambda t: mail(message(subject="[Personal] party")), lambda t: mail(message())),
    ("disclaimer.wrapped", {"disclaimer": {**DISCLAIMERS, "action": "log", "signed": "wrap"}},
     lambda t: mail(SIGNED), lambda t: mail(message())),
    ("disclaimer.signed_skipped", {"disclaimer": {**DISCLAIMERS, "action": "log", "signed": "skip"}},
     lambda t: mail(SIGNED), lambda t: mail(message())),
    ("disclaimer.signed", {"disclaimer": {**DISCLAIMERS, "action": "log", "signed": "reject"}},
     lambda t: mail(SIGNED), lambda t: mail(message())),
    ("disclaimer.skipped", {"disclaimer": {**DISCLAIMERS, "action": "log"}},
     lambda t: mail(BARE_CR), lambda t: mail(message())),
    ("misdirected.pupil", {"misdirected": {"pupil": "quarantine"}},
     lambda t: mail(message(to="p2@gmail.com", body="Amelia Jones read well.\r\n"),
                    to=("p2@gmail.com",)),
     lambda t: mail(message(to="p1@gmail.com", body="Amelia Jones read well.\r\n"),
                    to=("p1@gmail.com",))),
    ("misdirected.lookalike", {"misdirected": {"lookalike": "log"}},
     lambda t: mail(message(to="p1@gmial.com"), to=("p1@gmial.com",)),
     lambda t: mail(message(to="p1@gmail.com"), to=("p1@gmail.com",))),
    ("misdirected.unusual", {"misdirected": {"unusual": "log"}},
     lambda t: mail(message(body=f"SEN plan, UPN {UPN}.\r\n"), to=(*COLLEAGUES, "x@other.org")),
     lambda t: mail(message(body="Staff meeting at four.\r\n"), to=(*COLLEAGUES, "x@other.org"))),
    ("bcc.moved", {"bcc": {"action": "rewrite"}}, lambda t: bulk(), lambda t: bulk(PARENTS[:1])),
    ("bcc.split", {"bcc": {"action": "rewrite", "mode": "split"}},
     lambda t: bulk(), lambda t: bulk(PARENTS[:1])),
    ("bcc.exposed", {"bcc": {"action": "log"}}, lambda t: bulk(), lambda t: bulk(PARENTS[:1])),
]


def settings_for(tmp_path: Path, checks: dict[str, Any]) -> config.Settings:
    """The real loader's settings with this one check configured and every other off."""
    off = {name: {"action": "off"} for name in REGISTRY if name not in checks}
    off["bcc"] = off.get("bcc", {"action": "off"})
    data = deep_update(base_config(tmp_path / "var", "smtp://127.0.0.1:25"),
                       {**directory(tmp_path), "checks": {**off, **checks},
                        "inspection": {"max_expanded": "2MiB", "max_text": "1MiB"}})
    path = tmp_path / "mailguard.toml"
    path.write_text(toml_dump(data))
    return config.load(path)


def rule_ids(settings: config.Settings, name: str, m: Mail) -> list[str]:
    return [f.rule_id for f in asyncio.run(REGISTRY[name].inspect(m, settings.checks[name]))]


@pytest.mark.parametrize(("rule", "checks", "hit", "miss"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_hits_and_misses_alone(tmp_path, rule, checks, hit, miss):
    name = rule.partition(".")[0]
    settings = settings_for(tmp_path, checks)
    assert rule not in rule_ids(settings, name, miss(tmp_path)), "MISS"
    assert rule in rule_ids(settings, name, hit(tmp_path)), "HIT"


def test_every_rule_of_every_check_has_a_case():
    """A rule added to a check without a HIT and a MISS here fails this test."""
    import re

    root = Path(__file__).resolve().parent.parent / "mailguard" / "checks"
    found = set()
    for name in REGISTRY:
        source = (root / f"{name}.py").read_text()
        for rule in re.findall(r'rule="([a-z_]+)"|_finding\(settings, "([a-z_]+)"', source):
            found.add(f"{name}.{rule[0] or rule[1]}")
        if name == "attachments":
            found |= {f"attachments.{r}" for r in REGISTRY[name].RULES}
    elsewhere = {"identity": "test_identity", "antivirus": "test_antivirus",
                 "language": "language_suite"}
    missing = {r for r in found if r.partition(".")[0] not in elsewhere} - {c[0] for c in CASES}
    assert not missing, f"rules with no HIT/MISS case: {sorted(missing)}"
