"""Abusive, discriminatory, obscene, threatening or otherwise prohibited language, from lists
IT can tune (wordlists/). All five policies forbid it; excalibur section 26 asks for an alert
when staff send "an inappropriate word or phrase".
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from mailguard.files import report
from mailguard.files.limits import Limits
from mailguard.mime.views import views
from mailguard.model import INLINE_LIMIT, Action, Finding, Mail
from mailguard.school import hours as working
from mailguard.school.directory import role_of
from mailguard.settings.schema import CheckOptions, Chosen, Flag, KeyProblem, Text
from mailguard.settings.schema import Options as TableOptions
from mailguard.settings.shared import Shared
from mailguard.text import grooming, lexicon, rules

NAME = "language"
READS_BODY = True
CLAUSES = {
    "discriminatory": "excalibur section 17; leventhorpe 'Prohibited Communications'; vale section 4",
    "threats": "excalibur section 17; leventhorpe 'Prohibited Communications'",
    "harassment": "excalibur section 17; bourne section 5c(i)",
    "extremism": "excalibur section 11 (Prevent duty)",
    "gambling": "bourne section 5c(iii-iv); soke",
    "sexual": "bourne section 5c(iii-iv); excalibur section 17",
    "chain": "excalibur section 19; soke 'general guidance'",
    "appeals": "excalibur section 19; bourne section 5c(ii)",
    "contract": "excalibur section 20; soke; bourne section 5b(v)",
    # Safeguarding headings: KCSIE asks schools for "appropriate monitoring" (UKSIC).
    "drugs": "KCSIE appropriate monitoring; excalibur section 26; bourne section 5c(iii-iv)",
    "selfharm": "KCSIE appropriate monitoring; excalibur section 26",
    "suicide": "KCSIE appropriate monitoring; excalibur section 26",
    "exploitation": "KCSIE; bourne appendix B item 3; excalibur section 17",
}
DEFAULT_CLAUSE = "excalibur section 17; soke 'E-mail etiquette'; bourne section 5b(iii)"
LOWER = {"high": "medium", "medium": "low", "low": None}


@dataclass(frozen=True, eq=False)
class Settings:
    action: Action
    lexicon: lexicon.Lexicon
    folder: Path
    quoted: str                                       # "reduce", "full", "ignore"
    overrides: Mapping[tuple[str, str | None], Action]  # (category, severity or None)
    alerts: frozenset[str] = frozenset()              # categories the safeguarding lead hears of
    attachments: bool = True                          # also read text extracted from attachments
    limits: Limits = field(default_factory=Limits)
    rules: rules.Rules = field(default_factory=lambda: rules.Rules([], lexicon.Lexicon()))
    directory: Any = None                             # who is a pupil (roles=, grooming)
    hours: working.WorkingHours = field(default_factory=working.default)

    def action_for(self, category: str, severity: str) -> Action:
        return self.overrides.get((category, severity)) or self.overrides.get(
            (category, None)) or self.action


class CategoryOptions(TableOptions):
    """`[checks.language.categories.NAME]`: one wordlist's own actions."""

    action: Chosen | None = None
    """Every finding of this list (default: the check's action)."""
    low: Chosen | None = None
    """Its low-severity terms."""
    medium: Chosen | None = None
    """Its medium-severity terms."""
    high: Chosen | None = None
    """Its high-severity terms."""
    alert: Flag = False
    """Tell the safeguarding lead of every finding, whatever happens to the mail."""


class Options(CheckOptions):
    """`[checks.language]`: abusive, discriminatory and otherwise prohibited language."""

    action: Chosen | None = None
    """Any finding without an action of its own (default: log when the table is there)."""
    folder: Text = "wordlists"
    """The wordlists (NAME.txt) and rules (rules/) IT edits."""
    quoted: Literal["reduce", "full", "ignore"] = "reduce"
    """Quoted replies: one severity lower, read in full, or not read."""
    attachments: Flag = True
    """Also read the text extracted from attachments."""
    categories: dict[str, CategoryOptions] = Field(default_factory=dict)
    """Per-list actions and alerts."""
    hours: working.Options = Field(default_factory=working.Options)
    """The working week, for mail to pupils out of hours (`[checks.language.hours]`)."""


def build(o: Options, shared: Shared) -> Settings:
    action = o.chosen("action", Action.LOG)
    folder = shared.path(o.folder)
    found = lexicon.Lexicon()
    joined = rules.Rules([], lexicon.Lexicon())
    if action is not Action.OFF or o.categories:
        if not folder.is_dir():
            raise KeyProblem("folder", f"{folder} is not a folder of wordlists")
        try:
            joined = rules.load(folder / "rules")
            found = lexicon.load(folder, folded=joined.folded())   # one pass reads both
        except (lexicon.LexiconError, rules.RulesError, OSError, UnicodeDecodeError) as e:
            raise KeyProblem("folder", str(e)) from None
    overrides: dict[tuple[str, str | None], Action] = {}
    alerts: set[str] = set()
    for category, one in o.categories.items():
        if not (folder / f"{category}.txt").is_file():
            raise KeyProblem(f"categories.{category}", f"no wordlist {category}.txt in {folder}")
        for key in ("action", *lexicon.SEVERITIES):
            if getattr(one, key) is not None:
                overrides[(category, None if key == "action" else key)] = getattr(one, key)
        if one.alert:
            alerts.add(category)
    notifying = action is Action.NOTIFY or Action.NOTIFY in overrides.values()
    if (alerts or notifying) and not shared.organisation.safeguarding_lead:
        raise KeyProblem("categories" if alerts else "action",
                         "alerts go to the safeguarding lead: set [organisation] "
                         "safeguarding_lead to their address")
    try:
        calendar = working.build(o.hours)
    except KeyProblem as e:
        raise e.under("hours") from None
    return Settings(action=action, lexicon=found, folder=folder, overrides=overrides,
                    quoted=o.quoted, alerts=frozenset(alerts), attachments=o.attachments,
                    limits=shared.inspection, rules=joined, directory=shared.directory,
                    hours=calendar)


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    files = await report.of(mail, settings.limits) if settings.attachments else None
    if len(mail.raw) <= INLINE_LIMIT:
        return findings(mail, settings, files)
    return await asyncio.to_thread(findings, mail, settings, files)


def texts(mail: Mail, quoted: str = "full", files: report.MailFiles | None = None,
          ) -> list[tuple[str, str, bool]]:
    """(where, text, quoted?) for everything the check reads: the sender's own words, the
    quoted thread, documents they attach (their own), and attached messages (forwarded, so
    quoted). Quoted text is left out when `quoted` is "ignore"."""
    seen = views(mail)
    sources = [("own", seen.own, False), ("quoted", seen.quoted, True)]
    for file, forwarded in _attached(files.files if files else []):
        where = ("forwarded message " if forwarded else "attachment ") + file.path
        sources.append((where, file.extracted.properties, forwarded))
        sources.append((where, file.extracted.text, forwarded))   # not joined: no 2nd copy
    return [s for s in sources if s[1] and not (s[2] and quoted == "ignore")]


def _attached(files: list[report.FileReport], forwarded: bool = False,
              ) -> Iterator[tuple[report.FileReport, bool]]:
    for file in files:
        inside = forwarded or file.family in ("message", "outlook")
        yield file, inside
        yield from _attached(file.members, inside)


Match = tuple[str, bool, "lexicon.Hit | rules.RuleHit", str]   # (where, reduced, hit, text)


def matches(mail: Mail, settings: Settings, files: report.MailFiles | None = None,
            ) -> list[Match]:
    """Every list and rule hit in what the check reads, with the entries that ask for
    recipients of a role (`roles=pupil`) or words anywhere in the message (`scope=message`)
    kept only where the mail meets them."""
    sources = texts(mail, settings.quoted, files)
    roles = {role_of(settings.directory, r) for r in mail.envelope.recipients}
    scanned = {where: settings.lexicon.scan_folded(text) for where, text, _ in sources}
    everything = [t for _, t, _ in sources]
    listed_anywhere = [h for listed, _ in scanned.values() for h in listed]
    out: list[Match] = []
    for where, text, reduced in sources:
        listed, anchors = scanned[where]
        out += [(where, reduced, h, text)
                for h in lexicon.in_message(listed, everything, listed_anywhere)
                if not h.term.roles or roles & set(h.term.roles)]
        # The anchors were found in the lists' pass when the rules were folded in (the
        # shipped way); lists loaded apart (`wordlists --folder`) leave the rules to look.
        out += [(where, reduced, r, text) for r in settings.rules.scan(
            text, anchors if settings.lexicon.folded else None)]
    return out


def findings(mail: Mail, settings: Settings, files: report.MailFiles | None = None) -> list[Finding]:
    """One finding per term, at the severity and action for where it stood (own words and
    attached documents in full, quoted and forwarded text one lower by default), with a
    masked excerpt for the quarantine record; grooming signals make one finding together."""
    found: dict[str, Finding] = {}
    signals: list[Match] = []
    for where, reduced, hit, text in matches(mail, settings, files):
        if isinstance(hit, rules.RuleHit):
            category, listed, rule_id = hit.rule.category, hit.rule.severity, f"rule-{hit.rule.name}"
            how, heading = f"rule {hit.rule.name} ({' + '.join(hit.words)})", hit.rule.heading
        else:
            category, listed = hit.term.category, hit.term.severity
            rule_id, how, heading = hit.term.id.rpartition(":")[2], hit.how, hit.term.heading
        if category == grooming.CATEGORY:   # signals count together, and only in the sender's words
            if not reduced:
                signals.append((where, reduced, hit, text))
            continue
        severity: str | None = listed
        if reduced and settings.quoted == "reduce":
            severity = LOWER[listed]
        if severity is None:
            continue
        action = settings.action_for(category, severity)
        rule = f"{category}:{rule_id}"
        if action is Action.OFF or rule in found:
            continue
        found[rule] = Finding(
            alert=action is Action.NOTIFY or (category in settings.alerts and severity != "low"),
            check=NAME, rule=rule, action=action, severity=severity, heading=heading,
            clause=CLAUSES.get(category, DEFAULT_CLAUSE),
            message=f"the message contains {category} language ({_heading(heading)})" + (
                " in quoted or forwarded text" if where == "quoted" else
                f" in {where}" if where != "own" else ""),
            advice="reword it; if you are reporting abuse you received, forward it to the "
                   "safeguarding lead",
            evidence=f"{where}, {how}: {lexicon.excerpt(lexicon.readable(text), hit)}")
    groomed = grooming.finding(mail, [(where, h, text) for where, _, h, text in signals
                                      if isinstance(h, lexicon.Hit)],
                               settings.directory, settings.hours,
                               settings.action_for(grooming.CATEGORY, "high"))
    return list(found.values()) + ([groomed] if groomed else [])


def _heading(heading: str) -> str:
    return "no safeguarding heading" if heading in ("", "none") else heading
