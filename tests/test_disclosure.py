"""Personal contact details given to parents and pupils, over the real SMTP path: refused
with the reason; the school's own numbers and accounts, colleagues and suppliers are fine."""

from __future__ import annotations

import pytest
from conftest import message

DIRECTORY = ("email,role,name\nmum@gmail.com,parent,A Parent\npupil7@example.sch.uk,pupil,A Pupil\n"
             "orders@catering.co.uk,supplier,Catering\njo.smith.home@gmail.com,staff,Jo Smith\n")


@pytest.fixture
def gateway(make_gateway, tmp_path):
    (tmp_path / "directory.csv").write_text(DIRECTORY)
    return make_gateway({"directory": {"file": str(tmp_path / "directory.csv")},
                         "checks": {"disclosure": {
                             "action": "reject", "school_numbers": ["07700 900001"],
                             "school_handles": ["@ExampleAcademy"]}}})


@pytest.mark.parametrize("body, said", [
    ("If you can't get through, ring me on 07700 900123.", "1 mobile number not on the school's list"),
    ("Text me: +44 (0)7700-900-456", "1 mobile number not on the school's list"),
    ("Email me at home: jo.smith.home@gmail.com", "a personal email address at gmail.com"),
    ("Or at jo.s@hotmail.co.uk", "a personal email address at hotmail.co.uk"),
    ("Follow me on instagram.com/jo_smith_art", "1 social media account"),
    ("My snapchat is jojo_s", "1 social media account"),
])
def test_personal_details_to_a_parent_are_refused_with_the_reason(gateway, body, said):
    code, text = gateway.send(message(to="mum@gmail.com", body=body + "\r\n"),
                              recipients=("mum@gmail.com",))
    assert code == 550
    reply = text.decode()
    assert said in reply and "leventhorpe 'Personal Details'" in reply
    assert "07700" not in reply and "jo.smith.home" not in reply   # described, not repeated


def test_the_schools_own_details_and_other_recipients_pass(gateway, sink):
    school = ("The trip phone is 07700 900001; follow @ExampleAcademy for updates. "
              "Reply to office@example.sch.uk or mum@gmail.com.\r\n")
    assert gateway.send(message(to="mum@gmail.com", body=school),
                        recipients=("mum@gmail.com",))[0] == 250
    mine = "Ring me on 07700 900123.\r\n"
    assert gateway.send(message(to="head@example.sch.uk", body=mine),
                        recipients=("head@example.sch.uk",))[0] == 250
    assert gateway.send(message(to="orders@catering.co.uk", body=mine),
                        recipients=("orders@catering.co.uk",))[0] == 250
    css = ("Content-Type: text/html\r\n", "<style>@media screen { p { color: red } }</style><p>Hi</p>\r\n")
    assert gateway.send(message(to="pupil7@example.sch.uk", body=css[1], extra_headers=css[0]),
                        recipients=("pupil7@example.sch.uk",))[0] == 250
    sink.wait_for(4)
    assert [e["checks"] for e in gateway.events()] == [[], [], [], []]


def test_a_quoted_number_is_not_the_senders(gateway, sink):
    body = "Thanks, see you then.\r\n\r\nOn Mon, A Parent wrote:\r\n> My number is 07700 900999\r\n"
    assert gateway.send(message(to="mum@gmail.com", body=body), recipients=("mum@gmail.com",))[0] == 250


def test_a_school_number_that_is_not_a_mobile_is_a_config_error(make_gateway):
    gw = make_gateway({"checks": {"disclosure": {"school_numbers": ["01234 567890"]}}}, start=False)
    out = gw.cli("check-config")
    assert out.returncode == 2
    assert "checks.disclosure.school_numbers: '01234 567890' is not a UK mobile number" in out.stderr


def test_a_pupil_is_written_to_only_at_school(make_gateway, sink, tmp_path):
    (tmp_path / "directory.csv").write_text("email,role,name\npupil7@example.sch.uk,pupil,Amy\n"
                                            "amy.home@gmail.com,pupil,Amy\n")
    gw = make_gateway({"directory": {"file": str(tmp_path / "directory.csv")},
                       "checks": {"disclosure": {"action": "reject"}}})
    code, text = gw.send(message(to="amy.home@gmail.com", body="Your homework is attached.\r\n"),
                         recipients=("amy.home@gmail.com",))
    assert code == 550 and b"write to pupils only at their school email address" in text
    assert b"bourne appendix B" in text
    assert gw.send(message(to="pupil7@example.sch.uk", body="Your homework.\r\n"),
                   recipients=("pupil7@example.sch.uk",))[0] == 250


def test_work_forwarded_to_the_senders_own_gmail_is_held(make_gateway, sink, tmp_path):
    import filemaker as fm
    (tmp_path / "directory.csv").write_text(
        "email,role,name\njo.smith@example.sch.uk,staff,Jo Smith\nhome.jo@icloud.com,staff,Jo Smith\n")
    gw = make_gateway({"directory": {"file": str(tmp_path / "directory.csv")},
                       "checks": {"disclosure": {"action": "reject", "to_self": "quarantine"}}})
    report = {"reports.docx": fm.docx_file("Year 9 reports")}

    def send(to: str, files: dict) -> tuple[int, bytes]:
        raw = fm.mail_with(files, to=to).replace(b"From: teacher@example.sch.uk",
                                                  b"From: Jo Smith <jo.smith@example.sch.uk>")
        with gw.client() as c:
            c.mail("jo.smith@example.sch.uk")
            c.rcpt(to)
            return c.data(raw)
    assert send("josmith1985@gmail.com", report)[1].startswith(b"2.0.0 Held for review")   # name match
    assert send("home.jo@icloud.com", report)[1].startswith(b"2.0.0 Held for review")      # directory
    assert send("josmith1985@gmail.com", {})[0] == 250                               # no attachment
    assert send("sam.jones@gmail.com", report)[0] == 250                             # someone else
    sink.wait_for(2)
    assert [e["checks"] for e in gw.events()] == [
        ["disclosure.to_self"], ["disclosure.to_self"], [], []]
