"""The verdict's plan: typed steps ordered by the policy, stored with held mail, and carried out
on release exactly as decided, without the checks running again. In-process: the store, the
review actions and an aiosmtpd sink, no gateway process."""

from __future__ import annotations

import email
from pathlib import Path

import pytest
from conftest import Sink, base_config, deep_update, toml_dump

from mailguard import config, policy, review
from mailguard.model import (
    Action,
    AddDisclaimer,
    Client,
    Envelope,
    Finding,
    HideRecipients,
    Mail,
    Sign,
    SplitPerRecipient,
    TagSubject,
    unavailable,
)
from mailguard.pipeline import assess
from mailguard.store.opening import open_store
from mailguard.store.quarantine import Quarantine, plan_from_json, plan_to_json

PARENTS = ["p1@gmail.com", "p2@gmail.com", "p3@gmail.com"]


def finding(action: Action, *steps: object, check: str = "c") -> Finding:
    return Finding(check=check, rule="r", action=action, clause="k", message=f"m {check}",
                   advice="a", steps=steps)  # type: ignore[arg-type]


DISCLAIMER = AddDisclaimer("Trust: monitored.", "<p>Trust</p>")
HIDE = HideRecipients(("p1@gmail.com",), "t@example.sch.uk", "1 moved")


def test_the_plan_is_in_the_policys_order_not_the_order_the_checks_ran():
    found = [finding(Action.LOG, HIDE, SplitPerRecipient(), check="bcc"),
             finding(Action.LOG, DISCLAIMER, check="disclaimer"),
             finding(Action.LOG, TagSubject("Personal:"), check="personal")]
    verdict = policy.decide(found, Sign("t@example.sch.uk"))
    assert verdict.plan == (TagSubject("Personal:"), DISCLAIMER, HIDE, SplitPerRecipient(),
                            Sign("t@example.sch.uk"))
    assert verdict.split
    assert policy.decide(found[1:]).plan == (TagSubject("Personal:"), DISCLAIMER)
    # The same step asked for twice is done once.
    assert policy.decide([finding(Action.LOG, DISCLAIMER), finding(Action.LOG, DISCLAIMER)]
                         ).plan == (DISCLAIMER,)


def test_a_held_message_keeps_its_plan_and_a_refused_or_deferred_one_has_none():
    held = policy.decide([finding(Action.QUARANTINE), finding(Action.LOG, DISCLAIMER)])
    assert held.action is Action.QUARANTINE and held.plan == (DISCLAIMER,)
    refused = policy.decide([finding(Action.REJECT), finding(Action.LOG, DISCLAIMER)])
    assert refused.action is Action.REJECT and refused.plan == ()
    assert policy.decide([finding(Action.LOG)], Sign("a@b")).plan == (Sign("a@b"),)
    assert policy.decide([]).plan == () and policy.decide([]).action is Action.OFF


def test_a_check_that_could_not_run_defers_whatever_else_was_found():
    deferred = policy.decide([finding(Action.REJECT), unavailable("antivirus", "its scanner is down"),
                              finding(Action.LOG, DISCLAIMER)])
    assert deferred.action is Action.DEFER and deferred.plan == ()
    assert deferred.deferring is not None
    assert deferred.deferring.rule_id == "antivirus.unavailable"
    assert deferred.deferring.message == "the antivirus check could not run: its scanner is down"


def test_defer_is_not_an_action_a_check_can_be_given(tmp_path):
    path = tmp_path / "mailguard.toml"
    path.write_text(toml_dump(deep_update(base_config(tmp_path / "var", "smtp://127.0.0.1:25"),
                                          {"checks": {"limits": {"action": "defer"}}})))
    with pytest.raises(config.ConfigError, match=r"checks\.limits.*action"):
        config.load(path)


def test_a_stored_plan_reads_back_as_the_same_steps():
    plan = (TagSubject("Personal:"), AddDisclaimer("a", "<b>a</b>", "bottom", True), HIDE,
            SplitPerRecipient(), Sign("t@example.sch.uk"))
    assert plan_from_json(plan_to_json(plan)) == plan


def gateway_config(tmp_path: Path, sink: Sink, wording: str, bcc: str) -> config.Settings:
    folder = tmp_path / f"disclaimers-{bcc}"
    folder.mkdir()
    (folder / "default.txt").write_text(wording + "\n")
    path = tmp_path / f"mailguard-{bcc}.toml"
    path.write_text(toml_dump(deep_update(
        base_config(tmp_path / "var", f"smtp://127.0.0.1:{sink.port}"),
        {"checks": {"disclaimer": {"action": "log", "folder": str(folder)},
                    "bcc": {"action": bcc},
                    "limits": {"action": "quarantine", "max_recipients": 2}}})))
    return config.load(path)


def bulk_letter(n: int) -> Mail:
    to = ", ".join(PARENTS)
    raw = (f"From: Teacher <teacher@example.sch.uk>\r\nTo: {to}\r\nSubject: Trip {n}\r\n"
           f"Message-ID: <trip{n}@example.sch.uk>\r\n\r\nThe coach leaves at nine.\r\n").encode()
    return Mail(id=f"PLAN{n}", envelope=Envelope("teacher@example.sch.uk", tuple(PARENTS)),
                client=Client("127.0.0.1"), raw=raw)


async def test_a_release_carries_out_the_plan_decided_when_the_mail_was_held(tmp_path, sink):
    """IT changes the disclaimer and turns the BCC rewrite off while a letter waits for the
    DPO: the release still goes as it was decided (old wording, parents hidden). A letter
    held before plans were kept gets today's rewrites, as before."""
    before = gateway_config(tmp_path, sink, "Old wording: monitored.", "rewrite")
    after = gateway_config(tmp_path, sink, "New wording: monitored.", "log")
    db = await open_store(before.storage)
    try:
        quarantine = Quarantine(db, before.storage.data_dir, before.storage.quarantine_key)
        for n in (1, 2):
            mail = bulk_letter(n)
            verdict = await assess(mail, before)
            assert verdict.action is Action.QUARANTINE
            assert [type(s) for s in verdict.plan] == [AddDisclaimer, HideRecipients]
            await quarantine.hold(mail, verdict.findings, verdict.reason, verdict.plan)
        await db.run("UPDATE quarantine SET plan = NULL WHERE id = 'PLAN2'")
        for n in (1, 2):
            result = await review.release(after, quarantine, db, f"PLAN{n}", "dpo", b"k" * 32)
            assert result.complete and sorted(result.delivered) == PARENTS
    finally:
        await db.close()
    letters = [m for m in sink.wait_for(2) if sorted(m.recipients) == PARENTS]
    first, second = (email.message_from_bytes(m.data) for m in letters)
    assert "Old wording: monitored." in first.get_payload(decode=True).decode()
    assert first["To"] == "teacher@example.sch.uk" and "3 recipients moved" in first[
        "X-Mailguard-Bcc"]
    assert "New wording: monitored." in second.get_payload(decode=True).decode()
    assert "p1@gmail.com" in second["To"] and second["X-Mailguard-Bcc"] is None
    assert len(letters) == 2   # the rest: the sender told of each release


async def test_a_check_that_breaks_or_overruns_holds_the_mail_and_later_checks_still_time_out(
        tmp_path, sink, monkeypatch):
    """A check that raises, or runs past CHECK_TIMEOUT, makes the mail unreadable (held, never
    passed); the one timer is moved on per check, so a slow check late in the list gets its
    own full allowance, not what the earlier ones left."""
    import asyncio

    from mailguard import pipeline
    from mailguard.checks import bcc, disclaimer

    settings = gateway_config(tmp_path, sink, "Trust: monitored.", "log")
    monkeypatch.setattr(pipeline, "CHECK_TIMEOUT", 0.3)

    async def slow(mail: Mail, s: object, pause: float) -> list[Finding]:
        await asyncio.sleep(pause)
        return []

    async def broken(mail: Mail, s: object) -> list[Finding]:
        raise ValueError("a bug")

    monkeypatch.setattr(disclaimer, "inspect", lambda m, s: slow(m, s, 0.2))
    monkeypatch.setattr(bcc, "inspect", lambda m, s: slow(m, s, 0.2))   # 0.4 s in all: fine
    verdict = await assess(bulk_letter(1), settings)
    assert verdict.action is Action.QUARANTINE and verdict.reason != "unparseable"
    monkeypatch.setattr(bcc, "inspect", lambda m, s: slow(m, s, 1.0))
    verdict = await assess(bulk_letter(2), settings)
    assert verdict.reason == "unparseable" and verdict.action is Action.QUARANTINE
    assert verdict.findings[0].message == "the bcc check failed (TimeoutError)"
    monkeypatch.setattr(disclaimer, "inspect", broken)
    verdict = await assess(bulk_letter(3), settings)
    assert verdict.findings[0].message == "the disclaimer check failed (ValueError)"
