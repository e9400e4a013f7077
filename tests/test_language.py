"""The language check through the gateway: findings name category and term, never the words."""

from __future__ import annotations

import email
import email.policy
import json
import time

import pytest
from conftest import ROOT, base_config, message, toml_dump

from mailguard import config

LANGUAGE = {"checks": {"language": {
    "action": "log", "folder": str(ROOT / "wordlists"),
    "categories": {"threats": {"high": "quarantine", "medium": "log"},
                   "extremism": {"action": "quarantine"}},
}}}


def test_own_words_are_logged_by_category_and_term_id(make_gateway, sink):
    gw = make_gateway(LANGUAGE)
    assert gw.send(message(subject="Report", body="This is bullshit, frankly.\r\n"))[0] == 250
    assert len(sink.wait_for(1)) == 1
    [event] = gw.events()
    assert event["verdict"] == "delivered"
    assert [c.rpartition(":")[0] for c in event["checks"]] == ["language.profanity"]
    assert "bullshit" not in gw.log() and "bullshit" not in json.dumps(event)


def test_a_threat_is_held_with_a_masked_excerpt_for_the_dpo(make_gateway, sink):
    gw = make_gateway(LANGUAGE)
    code, text = gw.send(message(body="If you do that again I know where you live.\r\n"))
    assert code == 250 and b"Held for review" in text
    [shown] = gw.held()
    [finding] = shown["findings"]
    assert finding["rule"].startswith("language.threats:")
    # Context for the DPO, the matched words themselves masked.
    assert "If you do that again I****" in finding["evidence"]
    assert "where you live" not in finding["evidence"]
    assert sink.messages == []


def test_forwarded_abuse_counts_for_less_than_the_senders_own_words(make_gateway, sink):
    gw = make_gateway(LANGUAGE)
    forward = ("Head, please see below from a parent.\r\n\r\n"
               "---------- Forwarded message ---------\r\nFrom: Parent\r\n\r\n"
               "I know where you live.\r\n")
    assert gw.send(message(body=forward))[0] == 250
    assert len(sink.wait_for(1)) == 1  # delivered, not held: the threat is quoted
    [event] = gw.events()
    assert [c.rpartition(":")[0] for c in event["checks"]] == ["language.threats"]


def test_extremism_is_held_whatever_its_severity(make_gateway, sink):
    gw = make_gateway(LANGUAGE)
    code, text = gw.send(message(body="They talk about the great replacement.\r\n"))
    assert code == 250 and b"Held for review" in text


@pytest.mark.parametrize(("change", "expected"), [
    ({"categories": {"swearing": {"action": "log"}}},
     "checks.language.categories.swearing: no wordlist swearing.txt"),
    ({"categories": {"threats": {"high": "shout"}}},
     "checks.language.categories.threats.high: must be one of off, log, notify, quarantine, "
     "reject"),
    ({"categories": {"extremism": {"action": "notify"}}},
     r"checks.language.action: alerts go to the safeguarding lead: set \[organisation\] "
     "safeguarding_lead"),
    ({"categories": {"threats": {"alert": "yes"}}},
     "checks.language.categories.threats.alert: must be true or false"),
])
def test_config_errors(tmp_path, change, expected):
    data = base_config(tmp_path / "var", "maildir:var/outbox")
    data["checks"]["language"] = {"action": "log", "folder": str(ROOT / "wordlists"), **change}
    path = tmp_path / "c.toml"
    path.write_text(toml_dump(data))
    with pytest.raises(config.ConfigError, match=expected):
        config.load(path)


DSL = "dsl@example.sch.uk"
ALERTING = {"organisation": {"safeguarding_lead": DSL}, "checks": {"language": {
    "action": "log", "folder": str(ROOT / "wordlists"),
    "categories": {"threats": {"high": "notify"},
                   "extremism": {"action": "quarantine", "alert": True}},
}}}


def alert_for(sink, reference: str, messages: int = 2) -> str:
    [notice] = [m for m in sink.wait_for(messages) if m.recipients == [DSL]]
    parsed = email.message_from_bytes(notice.data, policy=email.policy.default)
    text = parsed.get_body().get_content()
    assert f"(reference {reference})" in parsed["Subject"] and notice.sender in ("", "<>")
    assert f"mailguard quarantine show {reference}" in text
    return text


def test_notify_delivers_keeps_a_copy_and_tells_the_safeguarding_lead(make_gateway, sink):
    gw = make_gateway(ALERTING)
    code, _ = gw.send(message(body="If you do that again I know where you live.\r\n"))
    assert code == 250
    [event] = gw.events()
    assert event["verdict"] == "delivered"
    text = alert_for(sink, event["id"])
    assert "threats language" in text and "It was delivered" in text
    assert "language.threats:" in text
    assert "where you live" not in text      # the words stay in the quarantine
    [copy] = [json.loads(line) for line in gw.cli("quarantine", "list", "--status", "released",
                                                   "--json").stdout.splitlines() if line]
    assert copy["id"] == event["id"]
    shown = gw.cli("quarantine", "show", copy["id"], "--raw").stdout
    assert "I know where you live" in shown


def test_held_extremism_alerts_the_safeguarding_lead_too(make_gateway, sink):
    gw = make_gateway(ALERTING)
    code, text = gw.send(message(body="They want a race war.\r\n"))
    assert code == 250 and b"Held for review" in text
    [event] = gw.events()
    notice = alert_for(sink, event["id"], messages=1)
    assert "extremism language" in notice and "held in the quarantine" in notice
    assert len(sink.messages) == 1          # the alert only: the message itself is held


def test_swearing_does_not_alert_the_safeguarding_lead(make_gateway, sink):
    gw = make_gateway(ALERTING)
    assert gw.send(message(body="This is bullshit.\r\n"))[0] == 250
    sink.wait_for(1)
    time.sleep(0.5)
    assert [DSL not in m.recipients for m in sink.messages] == [True]


def test_a_broken_wordlist_line_names_file_and_line(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "profanity.txt").write_text("ok\nbad ; colour=red\n")
    data = base_config(tmp_path / "var", "maildir:var/outbox")
    data["checks"]["language"] = {"action": "log", "folder": str(lists)}
    path = tmp_path / "c.toml"
    path.write_text(toml_dump(data))
    with pytest.raises(config.ConfigError,
                       match=r"checks\.language\.folder: .*profanity\.txt: line 2: unknown option"):
        config.load(path)


def test_wordlists_stats_counts_hits_per_term_and_category(make_gateway, sink):
    gw = make_gateway(LANGUAGE)
    for body in ("what bullshit\r\n", "more bullshit\r\n", "you twat\r\n", "hello\r\n"):
        assert gw.send(message(body=body))[0] == 250
    gw.events()
    out = gw.cli("wordlists", "stats", "--since", "1d", "--json")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["messages"] == 4 and stats["categories"] == {"profanity": 3}
    assert [(t["entry"], t["hits"]) for t in stats["terms"]] == [("bullshit", 2), ("twat", 1)]


def test_lists_reload_when_saved_and_a_broken_line_keeps_the_old_ones(make_gateway, sink, tmp_path):
    import shutil
    import time

    lists = tmp_path / "lists"
    shutil.copytree(ROOT / "wordlists", lists)
    gw = make_gateway({"checks": {"language": {"action": "log", "folder": str(lists)}}})

    def save(line: str, logged: str) -> None:
        """Append a line as IT would, then wait for the gateway to notice the saved file."""
        with (lists / "profanity.txt").open("a") as f:
            f.write(line)
        deadline = time.monotonic() + 10
        while logged not in gw.log() and time.monotonic() < deadline:
            time.sleep(0.1)

    assert gw.send(message(body="what a numpty\r\n"))[0] == 250
    save("numpty ; severity=low\n", '"reloaded"')
    assert gw.send(message(body="what a numpty\r\n"))[0] == 250
    save("broken ; colour=red\n", "reload_failed_keeping_old_config")
    assert "profanity.txt: line" in gw.log() and "unknown option" in gw.log()
    assert gw.send(message(body="what a numpty\r\n"))[0] == 250  # the old lists still work
    checks = [e["checks"] for e in gw.events()]  # reading the log works with the list broken
    assert checks[0] == [] and [c.rpartition(":")[0] for c in checks[1]] == ["language.profanity"]
    assert [c.rpartition(":")[0] for c in checks[2]] == ["language.profanity"]


def test_replay_shows_what_a_list_change_would_flag_or_clear(make_gateway, sink, tmp_path):
    import shutil

    gw = make_gateway(LANGUAGE)
    code, text = gw.send(message(body="I know where you live, numpty.\r\n"))
    assert code == 250 and b"Held for review" in text
    [held] = [json.loads(line) for line in gw.cli("quarantine", "list", "--json").stdout.split("\n")
              if line]
    trial = tmp_path / "trial"
    shutil.copytree(ROOT / "wordlists", trial)
    threats = (trial / "threats.txt").read_text().replace("i know where you live\n", "")
    (trial / "threats.txt").write_text(threats)
    with (trial / "profanity.txt").open("a") as f:
        f.write("numpty ; severity=low\n")
    out = gw.cli("wordlists", "replay", "--folder", str(trial), "--json")
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert row["id"] == held["id"]
    assert row["now_flagged"].startswith("language.profanity:")
    assert row["now_cleared"].startswith("language.threats:")
    same = gw.cli("wordlists", "replay", "--json")  # the lists in use: nothing changes
    assert json.loads(same.stdout) == []


def test_only_the_words_a_reader_sees_count_in_html(make_gateway, sink):
    gw = make_gateway(LANGUAGE)
    hidden = ("From: teacher@example.sch.uk\r\nTo: parent@gmail.com\r\nSubject: Newsletter\r\n"
              "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
              "<html><head><title>I know where you live</title><style>p.bullshit{color:red}"
              "</style></head><body><!--[if mso]><p>I know where you live</p><![endif]-->"
              "<p>Our trip is on Friday.</p><script>var bullshit = 1;</script></body></html>\r\n")
    assert gw.send(hidden.encode())[0] == 250
    shown = hidden.replace("Our trip is on Friday.", "I know where you live.")
    code, text = gw.send(shown.encode())
    assert code == 250 and b"Held for review" in text
    first, second = gw.events(at_least=2)
    assert first["checks"] == [] and first["verdict"] == "delivered"
    assert [c.rpartition(":")[0] for c in second["checks"]] == ["language.threats"]
