"""identity check: each rule has a HIT and a MISS, run on the check alone."""

from __future__ import annotations

import asyncio

import pytest
from conftest import message

from mailguard.checks import identity
from mailguard.model import Action, Client, Envelope, Mail
from mailguard.settings.shared import OrganisationSettings

ORG = OrganisationSettings(name="Trust", domains=("example.sch.uk",), postmaster="pm@example.sch.uk")
SETTINGS = identity.Settings(action=Action.REJECT, organisation=ORG, allow_subdomains=True,
                             delegations={"office@example.sch.uk": frozenset({"jbloggs"})})


def rules(raw: bytes, *, sender: str = "teacher@example.sch.uk", user: str | None = None,
          settings: identity.Settings = SETTINGS) -> list[str]:
    mail = Mail(id="T", envelope=Envelope(sender, ("p@gmail.com",)),
                client=Client(ip="127.0.0.1", auth_user=user), raw=raw)
    return [f.rule for f in asyncio.run(identity.inspect(mail, settings))]


@pytest.mark.parametrize(("raw", "expected"), [
    (message(), []),
    (message(from_='"Mrs Smith" <Teacher@Example.SCH.UK>'), []),
    (message(from_="staff@mail.example.sch.uk"), []),
    (message(from_="someone@gmail.com"), ["foreign_from"]),
    (message(from_="x@example.sch.uk.evil.com"), ["foreign_from"]),
    (message(from_="a@example.sch.uk, b@example.sch.uk"), ["several_from"]),
    (b"To: p@gmail.com\r\nSubject: no from\r\n\r\nbody\r\n", ["no_from"]),
    (message(from_="not an address"), ["foreign_from"]),
])
def test_from_domain_rules(raw, expected):
    assert rules(raw) == expected


def test_subdomains_can_be_refused():
    strict = identity.Settings(action=Action.REJECT, organisation=ORG, allow_subdomains=False,
                               delegations={})
    assert rules(message(from_="staff@mail.example.sch.uk"), settings=strict) == ["foreign_from"]


def test_bounces_from_the_mail_system_are_not_held_to_the_domain_rule():
    assert rules(message(from_="MAILER-DAEMON@mx.outlook.com"), sender="") == []
    assert rules(message(from_="MAILER-DAEMON@mx.outlook.com")) == ["foreign_from"]


@pytest.mark.parametrize(("user", "from_", "expected"), [
    ("teacher@example.sch.uk", "teacher@example.sch.uk", []),
    ("TEACHER@example.sch.uk", "Teacher@Example.sch.uk", []),
    ("teacher", "teacher@example.sch.uk", []),
    ("teacher@example.sch.uk", "head@example.sch.uk", ["not_yours"]),
    ("jbloggs", "office@example.sch.uk", []),
    ("someoneelse", "office@example.sch.uk", ["not_yours"]),
])
def test_signed_in_user_must_own_the_from_address(user, from_, expected):
    assert rules(message(from_=from_), user=user) == expected


def test_findings_cite_the_clause_and_redact_the_address():
    mail = Mail(id="T", envelope=Envelope("t@example.sch.uk", ("p@gmail.com",)),
                client=Client(ip="127.0.0.1"), raw=message(from_="jane.doe@gmail.com"))
    [f] = asyncio.run(identity.inspect(mail, SETTINGS))
    assert f.rule_id == "identity.foreign_from" and f.action is Action.REJECT
    assert "leventhorpe" in f.clause
    assert "jane.doe" not in f.evidence and f.evidence == "From domain gmail.com"
