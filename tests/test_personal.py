"""Personal mail over the real SMTP path: untagged personal mail refused (or tagged for the
sender), tagged mail logged with whether it went in working hours, school mail left alone;
and the working-hours clock itself, across the change to British Summer Time."""

from __future__ import annotations

import datetime as dt
import email
from email.policy import default as default_policy

import pytest
from conftest import base_config, message, toml_dump

from mailguard import config
from mailguard.school import hours as working
from mailguard.school.hours import WorkingHours

LOVE = "Can't wait for dinner tonight, love you xx\r\n"
EXCALIBUR = {"checks": {"personal": {"action": "reject", "tagged": "log"}}}


def test_untagged_personal_mail_is_refused_with_the_fix(make_gateway, sink):
    gw = make_gateway(EXCALIBUR)
    code, text = gw.send(message(to="sam@gmail.com", subject="tonight", body=LOVE),
                         recipients=("sam@gmail.com",))
    assert code == 550
    reply = text.decode()
    assert "must be labelled 'personal' in the subject" in reply
    assert "add 'Personal:' to the subject and send again" in reply
    assert "excalibur section 15" in reply
    [event] = gw.events()
    assert event["checks"] == ["personal.untagged"]


def test_tagged_personal_mail_goes_and_says_when_it_was_sent(make_gateway, sink):
    gw = make_gateway(EXCALIBUR)
    assert gw.send(message(to="sam@gmail.com", subject="Personal: tonight", body=LOVE),
                   recipients=("sam@gmail.com",))[0] == 250
    sink.wait_for(1)
    [event] = gw.events()
    assert event["verdict"] == "delivered" and event["checks"] == ["personal.tagged"]


def test_a_tag_in_an_encoded_subject_counts(make_gateway, sink):
    gw = make_gateway(EXCALIBUR)
    subject = "=?UTF-8?B?UGVyc29uYWw6IGTDrm5lciBjZSBzb2ly?="   # "Personal: dîner ce soir"
    assert gw.send(message(to="sam@gmail.com", subject=subject, body=LOVE),
                   recipients=("sam@gmail.com",))[0] == 250
    sink.wait_for(1)
    assert gw.events()[0]["checks"] == ["personal.tagged"]


def test_auto_tag_adds_the_label_and_delivers(make_gateway, sink):
    gw = make_gateway({"checks": {"personal": {"action": "reject", "auto_tag": True}}})
    raw = message(to="sam@gmail.com", subject="tonight", body=LOVE)
    assert gw.send(raw, recipients=("sam@gmail.com",))[0] == 250
    [got] = sink.wait_for(1)
    assert b"\r\nSubject: Personal: tonight\r\n" in got.data
    assert got.data.endswith(raw.split(b"\r\n\r\n", 1)[1])   # the body untouched


def test_auto_tagged_mail_gets_the_personal_views_notice(make_gateway, sink, tmp_path):
    folder = tmp_path / "disclaimers"
    folder.mkdir()
    (folder / "default.txt").write_text("{trust}: monitored mail.\n")
    (folder / "personal.txt").write_text("Personal views of {sender}.\n")
    gw = make_gateway({"checks": {"personal": {"action": "reject", "auto_tag": True},
                                  "disclaimer": {"action": "log", "folder": str(folder)}}})
    assert gw.send(message(to="sam@gmail.com", subject="tonight", body=LOVE),
                   recipients=("sam@gmail.com",))[0] == 250
    [got] = sink.wait_for(1)
    assert b"\r\nSubject: Personal: tonight\r\n" in got.data
    text = email.message_from_bytes(got.data, policy=default_policy).get_body().get_content()
    assert text.index("Personal views of teacher@example.sch.uk.") < text.index(
        "Test Academy Trust: monitored mail.")
    assert gw.events()[0]["checks"] == ["personal.auto_tagged", "disclaimer.personal_notice",
                                        "disclaimer.added"]


@pytest.mark.parametrize("subject, tagged", [
    ("Personal: tonight", True), ("[Personal] tonight", True), ("Re: PERSONAL - tonight", True),
    ("Fwd: personal: tonight", True), ("tonight (personal)", True), ("Personal", True),
    ("Personal development day", False), ("INSET: personal, social, health education", False),
    ("Your personal-data request", False), ("Impersonal", False),
])
def test_the_tag_is_personal_as_a_label_not_any_use_of_the_word(tmp_path, subject, tagged):
    data = base_config(tmp_path / "var", "maildir:var/outbox")
    data["checks"]["personal"] = {"action": "log"}
    path = tmp_path / "m.toml"
    path.write_text(toml_dump(data))
    settings = config.load(path)
    assert bool(settings.checks["personal"].tag.search(subject)) is tagged
    assert settings.checks["disclaimer"].personal_check.tag is settings.checks["personal"].tag


def test_the_tag_is_set_once(tmp_path):
    data = base_config(tmp_path / "var", "maildir:var/outbox")
    data["checks"]["disclaimer"] = {"action": "off", "personal_subject": "^Personal"}
    path = tmp_path / "m.toml"
    path.write_text(toml_dump(data))
    with pytest.raises(config.ConfigError) as e:
        config.load(path)
    assert "checks.disclaimer.personal_subject: set the personal tag once, as " \
           "[checks.personal] tag" in str(e.value)


def test_school_mail_is_not_personal(make_gateway, sink, tmp_path):
    (tmp_path / "directory.csv").write_text("email,role,name\nmum@gmail.com,parent,A Parent\n")
    gw = make_gateway({**EXCALIBUR, "directory": {"file": str(tmp_path / "directory.csv")}})
    to_parent = message(to="mum@gmail.com", body="Amelia was a star in the class play; have a "
                                                "lovely weekend xx\r\n")
    to_friend = message(to="sam@gmail.com", body="Can you cover my Year 9 lesson and the "
                                                "staff meeting on Friday?\r\n")
    assert gw.send(to_parent, recipients=("mum@gmail.com",))[0] == 250
    assert gw.send(to_friend, recipients=("sam@gmail.com",))[0] == 250
    sink.wait_for(2)
    assert [e["checks"] for e in gw.events()] == [[], []]


ALWAYS = {day: "00:00-24:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def test_bourne_holds_even_tagged_mail_and_vale_flags_sends_in_hours(make_gateway, sink):
    bourne = make_gateway({"checks": {"personal": {"action": "quarantine", "tagged": "quarantine"}}})
    code, text = bourne.send(message(to="sam@gmail.com", subject="Personal: tonight", body=LOVE),
                             recipients=("sam@gmail.com",))
    assert code == 250 and b"Held for review" in text
    bourne.stop()
    vale = make_gateway({"checks": {"personal": {"action": "log", "tagged": "log",
                                                 "in_hours": "quarantine", "hours": ALWAYS}}})
    code, text = vale.send(message(to="sam@gmail.com", subject="Personal: tonight", body=LOVE),
                           recipients=("sam@gmail.com",))
    assert code == 250 and b"Held for review" in text
    held = vale.events()[-1]
    assert "in working hours" in vale.cli("quarantine", "show", held["id"]).stdout


def hours(table: dict) -> WorkingHours:
    return working.build(working.Options.model_validate(table))


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_working_hours_follow_the_school_clock_and_holidays():
    clock = hours({"holidays": ["2026-12-21..2027-01-01", "2026-10-26"]})
    assert clock.contains(at("2026-11-24T10:00:00+00:00"))          # Tuesday, GMT
    assert not clock.contains(at("2026-11-24T17:45:00+00:00"))
    assert not clock.contains(at("2026-11-28T10:00:00+00:00"))      # Saturday
    assert not clock.contains(at("2026-12-22T10:00:00+00:00"))      # Christmas holiday
    assert not clock.contains(at("2026-10-26T10:00:00+00:00"))      # an INSET day off
    assert clock.contains(at("2026-07-01T07:30:00+00:00"))          # 08:30 BST
    assert not clock.contains(at("2026-07-01T16:45:00+00:00"))      # 17:45 BST
    assert "outside working hours" in clock.describe(at("2026-11-28T10:00:00+00:00"))


@pytest.mark.parametrize("table, expected", [
    ({"timezone": "Europe/Londres"}, "timezone: unknown time zone 'Europe/Londres'"),
    ({"mon": "9-5"}, "mon: '9-5' is not a span such as \"08:00-17:30\""),
    ({"tue": "17:00-08:00"}, "tue: '17:00-08:00' ends before it starts"),
    ({"holidays": ["next tuesday"]}, "holidays: 'next tuesday' is not a date"),
])
def test_bad_hours_are_config_errors(tmp_path, table, expected):
    data = base_config(tmp_path / "var", "maildir:var/outbox")
    data["checks"]["personal"] = {"action": "log", "hours": table}
    path = tmp_path / "m.toml"
    path.write_text(toml_dump(data))
    with pytest.raises(config.ConfigError) as e:
        config.load(path)
    assert f"checks.personal.hours.{expected}" in str(e.value)


def test_a_terse_note_to_an_unlisted_gmail_is_not_taken_for_personal_mail(make_gateway, sink):
    gw = make_gateway(EXCALIBUR)
    raw = message(to="parent@gmail.com", subject="Year 7 list", body="Please find attached.\r\n")
    assert gw.send(raw, recipients=("parent@gmail.com",))[0] == 250
    sink.wait_for(1)
    assert gw.events()[0]["checks"] == []


def test_personal_words_are_whole_words_or_phrases_whatever_surrounds_them():
    from mailguard.text.phrases import Phrases

    words = Phrases(["love you", "can't wait", "xx", "pub"])
    assert words.found("I LOVE YOU! Can't wait, xx") == {"love you", "can't wait", "xx"}
    # Not inside longer words or runs: a masked "XXXXXXXX" is no kiss, "public" no pub.
    assert words.found("Ref XXXXXXXX-XXXX for the public library, glove you left") == set()
    assert words.found("love\r\nyou") == {"love you"}   # a line break between the words
    assert Phrases(["!!", "pub"]).found("two  spaces, then the pub") == {"pub"}   # "!!": none
