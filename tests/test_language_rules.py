"""Language v2's rules and functional suite: abuse with no swear word in it (a protected group
with a derogatory, dehumanising or violent term in one sentence), and the counter-speech,
neutral mentions and homonyms that must pass. The suite is tests/language_suite.py."""

from __future__ import annotations

from pathlib import Path

import language_suite
import pytest
from conftest import ROOT, message

from mailguard.checks.language import findings
from mailguard.config import load
from mailguard.model import Client, Envelope, Mail
from mailguard.text import lexicon, rules

LANGUAGE = {"checks": {"language": {"action": "log", "folder": str(ROOT / "wordlists"),
                                    "categories": {"discriminatory": {"high": "quarantine"},
                                                   "threats": {"high": "quarantine"}}}}}


@pytest.fixture(scope="module")
def check():
    return language_suite.checker(load(ROOT / "config" / "mailguard.toml").checks["language"])


def flagged(check, text: str) -> bool:
    raw = f"From: a@example.sch.uk\r\nTo: b@example.org\r\nSubject: x\r\n\r\n{text}\r\n".encode()
    mail = Mail(id="T", envelope=Envelope("a@example.sch.uk", ("b@example.org",)),
                client=Client(ip="127.0.0.1"), raw=raw)
    return any(f.severity != "low" for f in findings(mail, check))


def test_the_suite_meets_the_issues_targets(check):
    """Must-flag recall at least 0.90 and must-pass accuracy at least 0.97 over the suite,
    the held-out third included, and every must-pass behaviour at 0.97 or better."""
    cases = language_suite.cases()
    got = [(language_suite.flagged(check, c), c) for c in cases]
    must = [g for g, c in got if c.flag]
    keep = [not g for g, c in got if not c.flag]
    assert sum(must) / len(must) >= 0.90
    assert sum(keep) / len(keep) >= 0.97
    for b in language_suite.BEHAVIOURS:
        if not b.flag:
            right = [not g for g, c in got if c.behaviour == b.name]
            assert sum(right) / len(right) >= 0.97, b.name
    assert len(language_suite.BEHAVIOURS) >= 25
    assert all(sum(c.behaviour == b.name for c in cases) >= 20 for b in language_suite.BEHAVIOURS)


@pytest.mark.parametrize(("text", "rule"), [
    ("Muslims are filthy.", "derogation"),
    ("I'm going to stab every one of them.", "threat"),
    ("Travellers are rats.", "dehumanising"),
    ("Honestly, I can't stand Sikhs.", "hatred"),
    ("Poles should go back where they came from.", "exclusion"),
    ("The new family are Roma. They are thieves.", "derogation"),
    ("Someone should burn their mosque.", "threat"),
    ("Immigrants should all be shot.", "wished-violence"),
    ("Jews are not human.", "dehumanising"),
    ("Musl1ms are f1lthy.", "derogation"),            # the slot lists read leetspeak too
])
def test_rules_find_abuse_without_a_listed_word(text, rule):
    joined = rules.load(ROOT / "wordlists" / "rules")
    assert rule in {r.rule.name for r in joined.scan(text)}


@pytest.mark.parametrize("text", [
    "He wrote 'Poles are thieves' on the board and has been excluded.",
    "Saying that Muslims are inferior is not acceptable here.",
    "Nobody here thinks Travellers are thieves.",
    "Our Jewish families organised a wonderful fair.",
    "I can't stand estate agents.",
    "The roads are dirty after the floods.",
    "The Travellers' site was visited. The bins there are dirty.",   # no "they" to the group
])
def test_rules_leave_reports_mentions_and_other_targets_alone(text):
    joined = rules.load(ROOT / "wordlists" / "rules")
    assert joined.scan(text) == []


def test_a_derogation_is_held_and_counter_speech_delivered(make_gateway, sink):
    gw = make_gateway(LANGUAGE)
    code, text = gw.send(message(body="Travellers are rats, the lot of them.\r\n"))
    assert code == 250 and b"Held for review" in text
    [shown] = gw.held()
    [finding] = shown["findings"]
    assert finding["rule"] == "language.discriminatory:rule-dehumanising"
    assert "(discrimination)" in finding["message"]
    assert "rule dehumanising (traveller* + rats)" in finding["evidence"]
    code, _ = gw.send(message(body="A pupil wrote \"Travellers are rats\" on a desk; he has "
                                   "been excluded.\r\n"))
    assert code == 250
    assert len(sink.wait_for(1)) == 1


def test_a_broken_rules_line_is_a_config_error(tmp_path: Path):
    folder = tmp_path / "wordlists"
    (folder / "rules").mkdir(parents=True)
    (folder / "profanity.txt").write_text("bastard\n")
    (folder / "rules" / "identity.txt").write_text("martians\n")
    (folder / "rules" / "rules.conf").write_text(
        "ok: identity > identity ; category=discriminatory\nbad: identity > nowhere ; "
        "category=discriminatory\n")
    with pytest.raises(rules.RulesError, match=r"rules.conf: line 2: no slot list nowhere.txt"):
        rules.load(folder / "rules")
    (folder / "rules" / "rules.conf").write_text("just some words\n")
    with pytest.raises(rules.RulesError, match=r"rules.conf: line 1: write NAME: SLOT > SLOT"):
        rules.load(folder / "rules")
    assert lexicon.load(folder).terms   # the word lists themselves still load


def test_lint_warns_of_a_rule_that_fires_on_a_neutral_sentence(tmp_path):
    """A predicate IT adds that would hold ordinary mail about a group is named before it
    goes live: the rule, the entries, and the neutral sentence (rules/neutral.txt)."""
    import shutil
    import subprocess
    import sys

    lists = tmp_path / "wordlists"
    shutil.copytree(ROOT / "wordlists", lists)
    lint = [sys.executable, "-m", "mailguard", "wordlists", "--config",
            str(ROOT / "config" / "mailguard.toml"), "lint", "--folder", str(lists)]
    clean = subprocess.run(lint, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert ", 0 warnings," in clean.stdout, clean.stdout
    with (lists / "rules" / "attribute.txt").open("a") as f:
        f.write("welcome\n")
    warned = subprocess.run(lint, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert ", 1 warnings," in warned.stdout, warned.stdout
    [line] = [x for x in warned.stdout.splitlines() if x.startswith("warning:")]
    assert "neutral.txt: line" in line and "rule derogation" in line
    assert "welcome" in line and "Travellers' children are welcome" in line


def test_a_group_named_kindly_first_and_abused_later_in_a_long_letter_is_found(check):
    """The lists' scan reports each word's first place; the rules read every place."""
    letter = ("Muslims are welcome at the summer fair. " + "The weather was fine. " * 40
              + "Honestly, Muslims are filthy.")
    assert flagged(check, letter)
    assert not flagged(check, letter.replace("are filthy", "are welcome too"))


@pytest.mark.parametrize("headers", [
    'Content-Type: text/plain; charset="x-made-up"\r\nContent-Transfer-Encoding: 8bit',
    'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: x-made-up',
])
def test_a_part_with_an_unknown_charset_or_encoding_is_still_read(check, headers):
    """A label mailguard does not know must not hide the words: they are read as a mail
    program would show them."""
    raw = (f"From: a@example.sch.uk\r\nTo: b@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           f"{headers}\r\n\r\nHonestly, Muslims are filthy.\r\n").encode()
    mail = Mail(id="T", envelope=Envelope("a@example.sch.uk", ("b@example.org",)),
                client=Client(ip="127.0.0.1"), raw=raw)
    assert [f.rule for f in findings(mail, check)] == ["discriminatory:rule-derogation"]
