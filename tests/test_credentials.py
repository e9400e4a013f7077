"""Passwords in mail, over the real SMTP path: held with the value masked, found in
spreadsheets of logins, not found in talk about passwords or in the quoted thread."""

from __future__ import annotations

import filemaker as fm
import pytest
from conftest import message

from mailguard.checks.credentials import secrets

CREDENTIALS = {"checks": {"credentials": {"action": "quarantine", "internal": "log"}}}


def test_a_password_to_a_parent_is_held_and_never_written_out(make_gateway, sink):
    gw = make_gateway(CREDENTIALS)
    raw = message(body="Hi, Amelia's Sumdog login is asmith14, password: Sunflower23!\r\n")
    code, text = gw.send(raw)
    assert code == 250 and b"Held for review" in text
    [event] = gw.events()
    assert event["checks"] == ["credentials.password"]
    shown = gw.cli("quarantine", "show", event["id"]).stdout
    assert "S**********" in shown and "Sunflower23" not in shown
    assert "Sunflower23" not in gw.log() and not sink.messages


def test_a_spreadsheet_of_pupil_logins_is_found(make_gateway):
    gw = make_gateway(CREDENTIALS)
    logins = fm.xlsx([(f"pupil{i}", f"Pupil {i}", f"Blue{i}Tiger") for i in range(30)],
                     columns=("Username", "Name", "Password"))
    code, _ = gw.send(fm.mail_with({"logins.xlsx": logins}), recipients=("parent@gmail.com",))
    assert code == 250
    [event] = gw.events()
    assert event["checks"] == ["credentials.password"]
    assert "30 rows with a password column" in gw.cli("quarantine", "show", event["id"]).stdout


def test_to_colleagues_it_is_logged_as_configured(make_gateway, sink):
    gw = make_gateway(CREDENTIALS)
    raw = message(to="newstarter@example.sch.uk", body="Your first password is Welcome2026!\r\n")
    assert gw.send(raw, recipients=("newstarter@example.sch.uk",))[0] == 250
    sink.wait_for(1)
    [event] = gw.events()
    assert event["verdict"] == "delivered" and event["checks"] == ["credentials.password"]


def test_talk_about_passwords_and_the_quoted_thread_pass(make_gateway, sink):
    gw = make_gateway(CREDENTIALS)
    talk = message(body="Please reset your password: the link is below. Passwords must be "
                        "8 characters.\r\n")
    quoted = message(body="Thanks, that worked!\r\n\r\nOn Mon, IT Support wrote:\r\n"
                          "> Your temporary password is Xq7-Lp9\r\n")
    assert gw.send(talk)[0] == 250 and gw.send(quoted)[0] == 250
    sink.wait_for(2)
    assert [e["checks"] for e in gw.events()] == [[], []]


@pytest.mark.parametrize("text, found", [
    ("The wifi password is SchoolNet2026", ["S************"]),
    ("https://portal.example.org/login?user=a&password=hunter22", ["h*******"]),
    ("Door PIN: 4821", ["4***"]),
    ("Username: jsmith Password - TrustMe", ["T******"]),
    ("password: ********", []), ("The password will be sent separately.", []),
    ("a password protected file", []), ("pin is 12", []), ("spinning and opinion: 1234", []),
])
def test_what_counts_as_a_password(text, found):
    assert secrets(text) == found
