"""Personal mail: tagged 'personal' in the subject, or recognised by signals scored together
(a personal address, personal words, no school context), with working hours noted.

excalibur section 15: personal emails "should be labelled 'personal' in the subject header"
and kept substantially out of working hours; vale section 5.2: not during work hours; bourne
section 5c(ii): personal use of email is not allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from mailguard.mime.views import views
from mailguard.model import Action, Finding, Mail, TagSubject
from mailguard.school import hours
from mailguard.school.directory import role_of
from mailguard.school.hours import Options as HoursOptions
from mailguard.settings.schema import CheckOptions, Chosen, Flag, KeyProblem, Text, Texts, Whole
from mailguard.settings.shared import OrganisationSettings, Shared
from mailguard.text.phrases import Phrases, Words

NAME = "personal"
READS_BODY = True
CLAUSE = "excalibur section 15; vale section 5.2; bourne section 5c(ii)"
WORDS = ("love you", "love u", "miss you", "xx", "xxx", "hun", "babe", "mum", "dad", "nan",
         "grandma", "birthday", "dinner", "drinks", "pub", "party", "date night", "weekend",
         "holiday", "our flight", "wedding", "hen do", "stag do", "gym", "netflix", "lol",
         "can't wait", "see you tonight", "takeaway", "the dog", "mortgage", "my car")
# 'personal' as a tag, not any use of the word: "Personal: …", "[Personal] …", "Re: PERSONAL -
# …", "… (personal)" match; "Personal development day" does not.
TAG = r"(?i)(?:^|[\s\[(:])personal(?:\s*[:\])]|\s+[-\u2013](?:\s|$)|\s*$)"
SCHOOL = ("pupil", "pupils", "student", "students", "class", "lesson", "lessons", "school",
          "term", "homework", "meeting", "report", "reports", "parents", "staff", "governors",
          "curriculum", "timetable", "ofsted", "assessment", "safeguarding", "trust",
          "academy", "department", "year group", "sen", "trip", "invoice", "order")


@dataclass(frozen=True)
class Settings:
    action: Action          # personal mail without the tag
    tagged: Action          # personal mail with it
    in_hours: Action | None  # either, when sent in working hours (if set)
    auto_tag: bool          # add the tag and deliver instead of applying `action`
    tag: re.Pattern[str]
    prefix: str
    threshold: int
    words: Phrases
    school: Phrases
    hours: hours.WorkingHours
    organisation: OrganisationSettings
    directory: Any


class Options(CheckOptions):
    """`[checks.personal]`: personal mail, and its subject tag."""

    action: Chosen | None = None
    """Personal mail without the tag (default: log when the table is there)."""
    tagged: Chosen = Action.LOG
    """Personal mail with the tag."""
    in_hours: Chosen | None = None
    """Either, when sent in working hours (unset: as above)."""
    auto_tag: Flag = False
    """Add the tag (prefix) and deliver, instead of applying action."""
    tag: Text = TAG
    """The one tag pattern (the disclaimer's personal-views notice uses it too): 'personal' as a
    label, as in `Personal:`, `[Personal]`, `PERSONAL -`, `(personal)`, and not "Personal
    development day"."""
    prefix: Text = "Personal:"
    """What auto_tag puts in front of the subject."""
    threshold: Whole = Field(3, ge=1)
    """The score at which untagged mail reads as personal."""
    words: Texts = WORDS
    """Words that make mail read as personal."""
    school_words: Texts = SCHOOL
    """Words that make it read as school business."""
    hours: HoursOptions = Field(default_factory=HoursOptions)
    """The working week (`[checks.personal.hours]`)."""

    @field_validator("in_hours", mode="before")
    @classmethod
    def _unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("tag")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return value


def build(o: Options, shared: Shared) -> Settings:
    try:
        calendar = hours.build(o.hours)
    except KeyProblem as e:
        raise e.under("hours") from None
    return Settings(
        action=o.chosen("action", Action.LOG), tagged=o.tagged, in_hours=o.in_hours,
        auto_tag=o.auto_tag, tag=re.compile(o.tag), prefix=o.prefix, threshold=o.threshold,
        words=Phrases(o.words), school=Phrases(o.school_words), hours=calendar,
        organisation=shared.organisation, directory=shared.directory)


def score(mail: Mail, text: str, settings: Settings) -> tuple[int, list[str]]:
    """How personal the message looks, and the signals that say so (for IT to tune)."""
    personal = sorted({r.rpartition("@")[2].lower() for r in mail.envelope.recipients
                       if role_of(settings.directory, r) not in ("parent", "supplier", "staff")}
                      & settings.organisation.freemail_domains)
    signals, total = [], 0
    if personal:   # +1 only: a terse school note to an unlisted parent's Gmail is not personal
        total += 1
        signals.append(f"to a personal address ({', '.join(personal)}) +1")
    form = Words.of(text)
    words = sorted(settings.words.found(form))[:3]
    if words:
        total += len(words)
        signals.append(f"personal words ({', '.join(words)}) +{len(words)}")
    if not settings.school.found(form):
        total += 1
        signals.append("no school context +1")
    return total, signals


@dataclass(frozen=True)
class Reading:
    """Whether a message is personal, worked out once and shared: this check reports it, and
    the disclaimer asks it (for its personal-views notice) without depending on check order
    or on anything a check sets on the message."""

    tagged: bool                  # the subject carries the tag
    total: int = 0                # the score, for untagged mail
    signals: tuple[str, ...] = ()
    marked: bool = False          # tagged, or will be (auto_tag and over the threshold)


def reading(mail: Mail, settings: Settings) -> Reading:
    """The message's Reading under these settings (cached on the message)."""
    if mail.personal_cache is None:
        tagged = bool(settings.tag.search(mail.subject))
        if tagged or settings.action is Action.OFF:
            mail.personal_cache = Reading(tagged, marked=tagged)
        else:
            total, signals = score(mail, views(mail).own, settings)
            mail.personal_cache = Reading(False, total, tuple(signals), settings.auto_tag and
                                          total >= settings.threshold)
    return mail.personal_cache


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    read = reading(mail, settings)
    tagged, total, signals = read.tagged, read.total, list(read.signals)
    if not tagged and total < settings.threshold:
        return []   # most mail: no clock reading needed
    when = settings.hours.describe(mail.received_at)
    in_hours = settings.hours.contains(mail.received_at)
    if tagged:
        action = settings.in_hours if in_hours and settings.in_hours else settings.tagged
        return [Finding(check=NAME, rule="tagged", action=action, clause=CLAUSE, severity="low",
                        message=f"personal mail, {when}", evidence=when,
                        advice="keep personal mail to a minimum and out of working hours")]
    evidence = f"score {total} (threshold {settings.threshold}): {'; '.join(signals)}; {when}"
    if settings.auto_tag:
        return [Finding(check=NAME, rule="auto_tagged", action=Action.LOG, clause=CLAUSE,
                        severity="low", evidence=evidence,
                        message=f"personal mail without the tag: '{settings.prefix}' was added",
                        advice="label personal mail 'personal' in the subject yourself",
                        steps=(TagSubject(settings.prefix),))]
    action = settings.in_hours if in_hours and settings.in_hours else settings.action
    return [Finding(
        check=NAME, rule="untagged", action=action, clause=CLAUSE, severity="medium",
        evidence=evidence,
        message="personal emails must be labelled 'personal' in the subject (this one looks "
                f"personal: {'; '.join(signals)})",
        advice=f"add '{settings.prefix}' to the subject and send again")]
