"""Safeguarding headings and staff-to-pupil contact: every language finding names the UK Safer
Internet Centre heading a designated safeguarding lead works with, and mail from staff to a
pupil with two signs of contact outside professional boundaries (or one strong one) is held
for the safeguarding lead, over the real SMTP path."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
from zoneinfo import ZoneInfo

import pytest
from conftest import ROOT, message

from mailguard.checks.language import findings
from mailguard.config import load
from mailguard.model import Client, Envelope, Mail
from mailguard.school.directory import Directory
from mailguard.text import lexicon

DSL = "dsl@example.sch.uk"
PUPIL = "pupil7@example.sch.uk"
DIRECTORY = (f"email,role,name\nmum@gmail.com,parent,A Parent\n{PUPIL},pupil,A Pupil\n"
             "head@example.sch.uk,staff,The Head\n")
ALWAYS = {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture(scope="module")
def check():
    """The shipped language check, with a directory that knows a pupil."""
    shipped = load(ROOT / "config" / "mailguard.toml").checks["language"]
    return dataclasses.replace(shipped, directory=Directory.parse(DIRECTORY))


def found(check, text: str, to: str = "parent@gmail.com", when: float | None = None):
    raw = f"From: a@example.sch.uk\r\nTo: {to}\r\nSubject: x\r\n\r\n{text}\r\n".encode()
    mail = Mail(id="T", envelope=Envelope("a@example.sch.uk", (to,)),
                client=Client(ip="127.0.0.1"), raw=raw)
    if when is not None:
        mail.received_at = when
    return [f for f in findings(mail, check) if f.severity != "low"]


@pytest.mark.parametrize(("text", "heading"), [
    ("I have been cutting myself again and I can't stop.", "self-harm"),
    ("Some days I just want to end my life.", "suicide"),
    ("Tell him I can get you weed on Friday.", "drugs and substance abuse"),
    ("Send me a photo of you in your bikini.", "child sexual exploitation"),
    ("You're a pathetic loser and everyone knows it.", "bullying"),
    ("Muslims are filthy.", "discrimination"),
    ("Sieg heil, brothers.", "extremism"),
    ("I'm going to stab every one of them.", "violence"),
    ("He sent round a link to a porn site.", "pornography"),
])
def test_each_finding_names_its_safeguarding_heading(check, text, heading):
    got = found(check, text)
    assert heading in {f.heading for f in got}, got
    assert any(f"({heading})" in f.message for f in got)


def test_profanity_that_targets_no_one_has_no_safeguarding_heading(check):
    [f] = found(check, "This printer is bullshit.")
    assert f.heading == "none" and "no safeguarding heading" in f.message


@pytest.mark.parametrize("text", [
    "Self-harm awareness week starts on Monday; leaflets are in the staff room.",
    "Our PSHE unit this term covers drugs, including cannabis and cocaine.",
    "The suicide prevention training is in the hall at 4pm.",
    "County lines: the police are running a briefing for Year 9 parents.",
    "Please don't tell anyone about the surprise party for Mrs Jones.",
    "You look lovely in the photo of the choir.",
])
def test_teaching_and_talking_about_a_heading_is_not_held(check, text):
    assert found(check, text) == []


def test_grooming_needs_two_signals_or_one_strong_and_a_pupil(check):
    two = "Keep this between us. Text me on the number I gave you."
    assert [f.rule for f in found(check, two, to=PUPIL)] == ["grooming:signals"]
    assert found(check, two, to="mum@gmail.com") == []          # to a parent: not a pupil
    assert found(check, "Text me if the coach is late.", to=PUPIL, when=_tuesday(10)) == []
    strong = found(check, "Don't tell your parents about this.", to=PUPIL, when=_tuesday(10))
    assert [(f.rule, f.alert, f.heading) for f in strong] == [("grooming:signals", True,
                                                               "grooming")]
    # Sending late at night is a signal too: with one other, it is enough.
    late = found(check, "Text me if the coach is late.", to=PUPIL, when=_tuesday(23))
    assert [f.rule for f in late] == ["grooming:signals"]
    assert "out-of-hours" in late[0].evidence and "outside working hours" in late[0].evidence


def test_grooming_signals_in_quoted_text_are_not_the_senders(check):
    reply = ("Thanks, see you in class.\r\n\r\nOn Mon, a pupil wrote:\r\n"
             "> Keep this between us, text me later. Don't tell your parents.\r\n")
    assert found(check, reply, to=PUPIL, when=_tuesday(10)) == []


def test_one_phrase_inside_another_is_one_signal(check, tmp_path):
    (tmp_path / "grooming.txt").write_text("delete this ; roles=pupil\n"
                                           "delete this email ; roles=pupil\n"
                                           "text me ; roles=pupil\n")
    mine = dataclasses.replace(check, lexicon=lexicon.load(tmp_path))
    assert found(mine, "Please delete this email.", to=PUPIL, when=_tuesday(10)) == []
    assert found(mine, "Please delete this email and text me.", to=PUPIL, when=_tuesday(10))


def test_an_entry_for_one_role_counts_only_in_mail_to_that_role(check, tmp_path):
    (tmp_path / "harassment.txt").write_text("teacher's pet ; roles=pupil ; severity=high\n")
    mine = dataclasses.replace(check, lexicon=lexicon.load(tmp_path))
    assert [f.rule for f in found(mine, "You teacher's pet.", to=PUPIL)] == ["harassment:1"]
    assert found(mine, "You teacher's pet.", to="mum@gmail.com") == []
    (tmp_path / "harassment.txt").write_text("x ; roles=governor\n")
    with pytest.raises(lexicon.LexiconError, match="line 1: roles must be among parent, pupil"):
        lexicon.load(tmp_path)


def test_a_companion_anywhere_in_the_message(check, tmp_path):
    """scope=message: as school monitoring lists do, a word that counts only when another of
    the list's concern appears anywhere in the same message."""
    (tmp_path / "drugs.txt").write_text("the usual ; with=weed,pills ; scope=message ; "
                                        "severity=high\n")
    mine = dataclasses.replace(check, lexicon=lexicon.load(tmp_path))
    assert found(mine, "Bring the usual on Friday.") == []
    assert [f.rule for f in found(mine, "Bring the usual on Friday.\r\n\r\nAnd some pills.")
            ] == ["drugs:1"]
    # "with another term of the same type" and "with any term", as monitoring lists say
    (tmp_path / "drugs.txt").write_text("the usual ; with=@same ; severity=high\n"
                                        "county lines ; severity=low\n")
    (tmp_path / "gambling.txt").write_text("a tenner on ; with=@any ; severity=high\n"
                                           "accumulator ; severity=low\n")
    mine = dataclasses.replace(check, lexicon=lexicon.load(tmp_path))
    assert found(mine, "Bring the usual on Friday.") == []
    assert [f.rule for f in found(mine, "Bring the usual.\r\n\r\nCounty lines, innit.")
            ] == ["drugs:1"]
    assert found(mine, "Put a tenner on the match.") == []
    assert [f.rule for f in found(mine, "Put a tenner on it. Bring the usual.")] == []
    assert [f.rule for f in found(mine, "Put a tenner on it, county lines style.")] == [
        "gambling:1"]
    (tmp_path / "drugs.txt").write_text("x ; unless=@same\n")
    with pytest.raises(lexicon.LexiconError, match="only with= takes @same or @any"):
        lexicon.load(tmp_path)
    (tmp_path / "drugs.txt").write_text("x ; scope=paragraph\n")
    with pytest.raises(lexicon.LexiconError, match="line 1: scope must be sentence or message"):
        lexicon.load(tmp_path)


def _tuesday(hour: int) -> float:
    return dt.datetime(2026, 11, 24, hour, 30, tzinfo=ZoneInfo("Europe/London")).timestamp()


@pytest.fixture
def school(make_gateway, tmp_path):
    (tmp_path / "directory.csv").write_text(DIRECTORY)
    return make_gateway({
        "organisation": {"safeguarding_lead": DSL},
        "directory": {"file": str(tmp_path / "directory.csv")},
        "checks": {"language": {"action": "log", "folder": str(ROOT / "wordlists"),
                                "hours": ALWAYS,
                                "categories": {"grooming": {"action": "quarantine",
                                                            "alert": True}}}}})


def test_mail_to_a_pupil_with_two_signals_is_held_and_the_lead_is_told(school, sink):
    body = "Well done today. Keep this between us, but I bought you a present.\r\n"
    code, text = school.send(message(to=PUPIL, body=body), recipients=(PUPIL,))
    assert code == 250 and b"Held for review" in text
    [held] = school.held()
    [f] = held["findings"]
    assert f["rule"] == "language.grooming:signals" and f["heading"] == "grooming"
    assert "2 signs of contact outside professional boundaries" in f["message"]
    [notice] = sink.wait_for(1)
    assert notice.recipients == [DSL]
    parsed = email.message_from_bytes(notice.data, policy=email.policy.default)
    assert parsed["Subject"].startswith("Safeguarding alert: grooming")
    text = parsed.get_body().get_content()
    assert "Safeguarding headings: grooming." in text and "present" not in text


def test_the_same_words_to_a_colleague_or_one_signal_to_a_pupil_are_delivered(school, sink):
    body = "Keep this between us, but I bought you a present.\r\n"
    assert school.send(message(to="head@example.sch.uk", body=body),
                       recipients=("head@example.sch.uk",))[0] == 250
    assert school.send(message(to=PUPIL, body="I bought you a present for the raffle.\r\n"),
                       recipients=(PUPIL,))[0] == 250
    assert len(sink.wait_for(2)) == 2
    assert school.held() == []
    assert [(e["verdict"], e["checks"]) for e in school.events()] == [("delivered", [])] * 2


def test_check_config_says_pupil_entries_need_a_directory(make_gateway, tmp_path):
    lists = {"checks": {"language": {"action": "log", "folder": str(ROOT / "wordlists")}}}
    bare = make_gateway(lists, start=False).cli("check-config")
    assert bare.returncode == 0
    assert ("language: entries for pupils (roles=, grooming signals) find nothing without a "
            "[directory]") in bare.stdout
    (tmp_path / "directory.csv").write_text(DIRECTORY)
    known = make_gateway({**lists, "directory": {"file": str(tmp_path / "directory.csv")}},
                         start=False).cli("check-config")
    assert known.returncode == 0 and "entries for pupils" not in known.stdout
