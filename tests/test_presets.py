"""Each trust's preset over the real SMTP path: a message that breaks each of its rules gets
the outcome the policy implies and cites the trust's own clause; one that breaks none goes."""

from __future__ import annotations

import shutil
from pathlib import Path

import filemaker as fm
import pytest
from conftest import ROOT, message

PROGRAM = Path(shutil.which("true") or "/bin/true").read_bytes()
PARENTS = ["mum@gmail.com", "dad@gmail.com", "carer@outlook.com"]
DIRECTORY = "email,role,name\n" + "".join(f"{p},parent,Parent\n" for p in PARENTS)
LOVE = "Can't wait for dinner tonight, love you xx\r\n"

# What to send for each rule: (message, recipients)
CASES = {
    "untagged": (lambda: message(to="sam@gmail.com", subject="tonight", body=LOVE), ["sam@gmail.com"]),
    "tagged": (lambda: message(to="sam@gmail.com", subject="Personal: tonight", body=LOVE),
               ["sam@gmail.com"]),
    "threat": (lambda: message(body="If you do that again I will kill you.\r\n"), ["parent@gmail.com"]),
    "harassment": (lambda: message(body="Just go and kill yourself.\r\n"), ["parent@gmail.com"]),
    "program": (lambda: fm.mail_with({"invoice.pdf": PROGRAM}), ["head@otherschool.org.uk"]),
    "mobile": (lambda: message(to="mum@gmail.com", body="Ring me on 07700 900123.\r\n"),
               ["mum@gmail.com"]),
    "password": (lambda: message(to="head@otherschool.org.uk",
                                 body="The portal password: Sunflower23!\r\n"), ["head@otherschool.org.uk"]),
    "pupil data": (lambda: fm.mail_with({"Year 7.xlsx": fm.xlsx()}), ["head@otherschool.org.uk"]),
    "data to gmail": (lambda: fm.mail_with({"Year 7.xlsx": fm.office_encrypted(fm.xlsx())},
                                           subject="CONFIDENTIAL Year 7"), ["me.teacher@gmail.com"]),
    "impostor": (lambda: message(from_="head.teacher@gmail.com"), ["parent@gmail.com"]),
    "exposed parents": (lambda: message(to=", ".join(PARENTS), subject="Trip",
                                        body="The coach leaves at 9.\r\n"), PARENTS),
    "copied to all": (lambda: message(to="undisclosed-recipients:;", body="FYI\r\n"),
                      [f"parent{i}@gmail.com" for i in range(60)]),
    "nothing wrong": (lambda: fm.mail_with({"minutes.docx": fm.docx_file("Governors' minutes")},
                                           body="The minutes of the governors' meeting.\n"),
                      ["clerk@otherschool.org.uk"]),
}
# preset → (case, outcome, rule id it fires, clause cited or None)
EXPECTED = {
    "excalibur": [
        ("untagged", "rejected", "personal.untagged", "Excalibur AUP section 15"),
        ("tagged", "delivered", "personal.tagged", None),
        ("threat", "held", "language.threats", "Excalibur AUP sections 11, 17 and 26"),
        ("program", "rejected", "attachments.executable", "Excalibur AUP section 4"),
    ],
    "leventhorpe": [
        ("impostor", "rejected", "identity.", "Leventhorpe AUP 'Security/Appropriate Use'"),
        ("mobile", "rejected", "disclosure.personal_details", "Leventhorpe AUP 'Personal Details'"),
        ("password", "held", "credentials.password", "Leventhorpe AUP 'Passwords and Personal Data'"),
        ("pupil data", "held", "confidential.unencrypted", "Leventhorpe AUP 'Passwords and Personal Data'"),
        ("harassment", "held", "language.harassment", "Leventhorpe AUP 'Prohibited Communications'"),
    ],
    "vale": [
        ("pupil data", "held", "confidential.unencrypted", "Vale AUP section 5.1"),
        ("data to gmail", "held", "confidential.freemail", "Vale AUP section 5.1"),
        ("tagged", "delivered", "personal.tagged", None),
        ("mobile", "rejected", "disclosure.personal_details", "Vale AUP section 5.1"),
        ("threat", "held", "language.threats", "Vale AUP section 4"),
    ],
    "soke": [
        ("program", "rejected", "attachments.executable", "Soke AUP 'Systems Use and Data Security'"),
        ("pupil data", "held", "confidential.unencrypted", "Soke AUP 'E-mail etiquette'"),
        ("password", "held", "credentials.password", "Soke AUP 'Systems Use and Data Security'"),
        ("tagged", "delivered", "personal.tagged", None),
        ("threat", "held", "language.threats", "Soke AUP 'E-mail etiquette'"),
        ("copied to all", "rejected", "limits.recipients", "Soke AUP 'general guidance'"),
    ],
    "bourne": [
        ("tagged", "held", "personal.tagged", "Bourne ICT policy section 5c(ii)"),
        ("exposed parents", "delivered", "bcc.", None),
        ("mobile", "rejected", "disclosure.personal_details",
         "Bourne ICT policy 'Mobile Phones' and appendix B"),
        ("password", "held", "credentials.password", "Bourne ICT policy 'Passwords'"),
        ("pupil data", "held", "confidential.unencrypted", "Bourne ICT policy section 5b(iv)"),
        ("program", "rejected", "attachments.executable", "Bourne ICT policy 'Virus Protection'"),
        ("harassment", "held", "language.harassment", "Bourne ICT policy sections 5b(iii) and 5c(i)"),
    ],
}


@pytest.mark.parametrize("front", ["relay", "milter"])
@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_each_rule_of_the_preset_and_a_clean_message(make_gateway, make_milter, sink, tmp_path,
                                                     preset, front):
    """The same table both ways: mailguard as the smarthost (relay), and inside a real Postfix
    as its milter, where Postfix gives the client mailguard's reply."""
    (tmp_path / "directory.csv").write_text(DIRECTORY)
    make = make_milter if front == "milter" else make_gateway
    gw = make({"preset": preset,
                       "organisation": {"safeguarding_lead": "dsl@example.sch.uk"},
                       "directory": {"file": str(tmp_path / "directory.csv")},
                       "checks": {"identity": {}, "language": {"folder": str(ROOT / "wordlists")}}})
    for case, outcome, rule, clause in [*EXPECTED[preset], ("nothing wrong", "delivered", "", None)]:
        build, recipients = CASES[case]
        before = len(gw.read_events())
        code, text = gw.send(build(), recipients=tuple(recipients))
        [event] = gw.events(at_least=before + 1)[before:]
        fired = [c for c in event["checks"] if c.startswith(rule)] if rule else event["checks"]
        assert fired if rule else not fired, (preset, case, event["checks"])
        assert event["verdict"] == {"rejected": "rejected", "held": "quarantined",
                                    "delivered": "delivered"}[outcome], (preset, case, event)
        if outcome == "rejected":
            assert code == 550 and clause in text.decode(), (preset, case, text)
        elif outcome == "held":
            assert clause in gw.cli("quarantine", "show", event["id"]).stdout, (preset, case)


def test_a_local_setting_wins_over_the_preset_and_check_config_says_so(make_gateway):
    gw = make_gateway({"preset": "bourne", "checks": {
        "personal": {"tagged": "log"}, "language": {"folder": str(ROOT / "wordlists")}}},
        start=False)
    out = gw.cli("check-config")
    assert out.returncode == 0, out.stderr
    assert "personal=quarantine" in out.stdout
    assert "preset bourne; this file overrides its checks.personal.tagged" in out.stdout


def test_an_unknown_preset_is_a_config_error(make_gateway):
    gw = make_gateway({"preset": "bourn"}, start=False)
    out = gw.cli("check-config")
    assert out.returncode == 2
    assert out.stderr.strip().endswith(
        "preset: unknown preset 'bourn'; presets: bourne, excalibur, leventhorpe, soke, vale")


def test_the_preset_can_be_given_on_the_command_line(make_gateway):
    gw = make_gateway({"checks": {"language": {"folder": str(ROOT / "wordlists")}}}, start=False)
    out = gw.cli("check-config", "--preset", "vale")
    assert out.returncode == 0, out.stderr
    assert "preset vale" in out.stdout and "personal=log" in out.stdout
    assert "disclosure=reject" in out.stdout   # vale's, as the local file leaves it unset
