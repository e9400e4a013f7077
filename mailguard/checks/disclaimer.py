"""The trust's disclaimer and monitoring notice on every message, worded per school.

excalibur §21 and soke ("our standard disclaimer should always be used on every e-mail");
excalibur §15 (recipients told mail may be monitored); bourne "Internet" §2 (personal views).
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from pydantic import Field, field_validator

from mailguard.checks import personal as personal_check
from mailguard.mime import partcheck
from mailguard.model import Action, AddDisclaimer, Finding, Mail
from mailguard.rewrite import disclaimer as rewrite
from mailguard.settings.schema import CheckOptions, KeyProblem, Text
from mailguard.settings.shared import OrganisationSettings, Shared

log = structlog.get_logger("mailguard.disclaimer")

NAME = "disclaimer"
READS_BODY = True
CLAUSE = "excalibur section 21 and section 15; soke 'E-mail etiquette'"
PERSONAL_CLAUSE = "bourne 'Internet' section 2"
PLACEHOLDERS = {"school", "trust", "sender"}


@dataclass(frozen=True)
class Template:
    text: str
    html: str | None


@dataclass(frozen=True, eq=False)  # hashed by identity: each loaded config is its own
class Settings:
    action: Action
    organisation: OrganisationSettings
    templates: Mapping[str, Template]  # sending domain or "default"
    personal: Template | None
    schools: Mapping[str, str]
    position: str
    signed: str
    personal_check: personal_check.Settings   # whose reading says the mail is personal

    def template_for(self, domain: str) -> Template | None:
        return self.templates.get(domain) or self.templates.get("default")


def _read(folder: Path, stem: str) -> Template | None:
    text_file, html_file = folder / f"{stem}.txt", folder / f"{stem}.html"
    if not text_file.is_file():
        return None
    template = Template(text_file.read_text(encoding="utf-8"),
                        html_file.read_text(encoding="utf-8") if html_file.is_file() else None)
    for source, name in ((template.text, text_file), (template.html, html_file)):
        if source is None:
            continue
        try:
            source.format_map(dict.fromkeys(PLACEHOLDERS, ""))
        except (KeyError, ValueError, IndexError) as e:
            raise KeyProblem("folder", f"{name}: bad placeholder {e}; use "
                             f"{sorted(PLACEHOLDERS)}") from None
    return template


class Options(CheckOptions):
    """`[checks.disclaimer]`: the trust's disclaimer on every message."""

    action: Literal["log", "off"] | None = None
    """"log": add the disclaimer and record it (default when the table is there); "off"."""
    folder: Text = "config/disclaimers"
    """Templates: DOMAIN.txt/.html, default.txt/.html, personal.txt ({school}, {trust}, {sender})."""
    position: Literal["quote", "bottom"] = "quote"
    """Under the newest text, above the quoted thread; or at the very bottom."""
    signed: Literal["wrap", "skip", "reject"] = "wrap"
    """Signed or encrypted mail: wrap it (signatures stay valid), send it as it is, or refuse it."""
    schools: dict[str, Text] = Field(default_factory=dict)
    """Each domain's school name, for {school}: "example.sch.uk" = "Example Primary"."""
    personal_subject: Text | None = None
    """No longer read: the personal tag is set once, as [checks.personal] tag."""

    @field_validator("action", mode="before")
    @classmethod
    def _log_or_off(cls, value: object) -> object:
        if value not in ("log", "off"):
            raise ValueError('must be "log" (add the disclaimer and record it) or "off"')
        return value

    @field_validator("personal_subject")
    @classmethod
    def _moved(cls, value: object) -> object:
        raise ValueError("set the personal tag once, as [checks.personal] tag")


def build(o: Options, shared: Shared) -> Settings:
    action = Action(o.action) if o.action else (Action.LOG if o.present else Action.OFF)
    org = shared.organisation
    folder = shared.path(o.folder)
    if action is not Action.OFF and not folder.is_dir():
        raise KeyProblem("folder", f"{folder} is not a folder of disclaimer templates")
    templates = {}
    if folder.is_dir():
        for stem in ("default", *org.domains):
            found = _read(folder, stem)
            if found:
                templates[stem] = found
    if action is not Action.OFF and not templates:
        raise KeyProblem("folder", f"{folder} has no default.txt nor a <domain>.txt")
    return Settings(
        action=action, organisation=org, templates=templates,
        personal=_read(folder, "personal") if folder.is_dir() else None,
        schools={d.lower(): name for d, name in o.schools.items()}, position=o.position,
        signed=o.signed, personal_check=shared.checks[personal_check.NAME])


def _render(template: Template, values: dict[str, str]) -> tuple[str, str]:
    text = template.text.format_map(values).strip()
    if template.html is None:
        return text, rewrite.html_fragment(text)
    escaped = {k: html.escape(v) for k, v in values.items()}
    inner = template.html.format_map(escaped).strip()
    return text, f'<div class="mailguard-disclaimer" style="{rewrite.HTML_STYLE}">{inner}</div>'


@functools.lru_cache(maxsize=4096)
def _rendered(settings: Settings, sender: str, personal: bool) -> rewrite.Disclaimer | None:
    """The disclaimer for one sender, rendered once and reused (staff send many messages)."""
    domain = sender.rpartition("@")[2].lower()
    template = settings.template_for(domain)
    if template is None:
        return None
    org = settings.organisation.name
    values = {"school": settings.schools.get(domain, org), "trust": org, "sender": sender}
    text, fragment = _render(template, values)
    if personal and settings.personal:
        p_text, p_html = _render(settings.personal, values)
        text, fragment = f"{p_text}\n\n{text}", p_html + fragment
    return rewrite.Disclaimer(text, fragment, settings.position)


def disclaimer_for(mail: Mail, settings: Settings) -> tuple[rewrite.Disclaimer, bool] | None:
    """The rendered disclaimer for this sender's school, and whether the mail is personal."""
    froms = mail.addresses("From")
    sender = froms[0][1] if froms else mail.envelope.sender
    personal = bool(settings.personal and personal_check.reading(
        mail, settings.personal_check).marked)
    found = _rendered(settings, sender, personal)
    return None if found is None else (found, personal)


def _step(d: rewrite.Disclaimer, wrap: bool = False) -> AddDisclaimer:
    return AddDisclaimer(d.text, d.html, d.position, wrap)


def _finding(settings: Settings, rule: str, message: str, action: Action = Action.LOG,
             clause: str = CLAUSE, **kw: object) -> Finding:
    return Finding(check=NAME, rule=rule, action=action, clause=clause, message=message,
                   advice="nothing: mailguard adds it", severity="info", **kw)  # type: ignore[arg-type]


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    found = disclaimer_for(mail, settings)
    if found is None:
        return []
    d, personal = found
    tree = mail.parts
    # Where the byte ranges might not be the parts a mail program sees, ask the standard
    # library; if it reads the message otherwise, splicing could change an attachment or
    # another part's headers, so the message goes as it came and the event says why.
    if partcheck.unusual(mail.raw, tree) and (
            problem := partcheck.disagreement(mail.raw, tree)):
        log.warning("disclaimer_not_added", id=mail.id, why=problem)
        return [_finding(settings, "skipped", "disclaimer not added: the message's MIME "
                         "structure is read differently by other mail software",
                         evidence=problem)]
    findings = []
    if personal:
        findings.append(_finding(settings, "personal_notice", "personal-views notice added",
                                 clause=PERSONAL_CLAUSE))
    if not rewrite.is_signed(mail.raw, tree):
        return [*findings, _finding(settings, "added", "trust disclaimer added",
                                    steps=(_step(d),))]
    if settings.signed == "reject":
        return [Finding(
            check=NAME, rule="signed", action=Action.REJECT, clause=CLAUSE,
            message="the message is signed or encrypted, so the trust's disclaimer cannot be "
                    "added to it", severity="medium",
            advice="send it without signing or encryption, or ask IT to allow signed mail")]
    if settings.signed == "skip":
        return [_finding(settings, "signed_skipped",
                         "signed or encrypted message sent without the disclaimer")]
    return [*findings, _finding(settings, "wrapped",
                                "signed or encrypted message wrapped with the disclaimer",
                                steps=(_step(d, wrap=True),))]
