"""Attachments judged by what their bytes are: executables, scripts, Office macros, files
whose name disguises their type, archive bombs, and files that cannot be read.

soke 'Systems Use and Data Security' treats .exe as suspicious and lets the school block
attachments; excalibur section 4 and bourne 'Virus Protection' ask for the same care.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import field_validator

from mailguard.files import filetype, report
from mailguard.files.limits import Limits
from mailguard.model import Action, Finding, Mail
from mailguard.settings.schema import CheckOptions, Chosen, Texts
from mailguard.settings.shared import Shared

NAME = "attachments"
READS_BODY = True
CLAUSE = "soke 'Systems Use and Data Security'; excalibur section 4; bourne 'Virus Protection'"
# rule → (default action, what happened, what to do)
RULES: dict[str, tuple[Action, str, str]] = {
    "executable": (Action.REJECT, "{path} is a program ({mime})",
                   "programs cannot be sent by email; share them through IT"),
    "script": (Action.REJECT, "{path} is a script or shortcut that runs when opened",
               "scripts cannot be sent by email; ask IT to share it another way"),
    "macros": (Action.QUARANTINE, "{path} contains Office macros",
               "save it without macros (.docx, .xlsx) and send it again"),
    "disguised": (Action.REJECT, "{path} is not what its name says: {detail}",
                  "send the file under its real type; if you did not make it, tell IT"),
    "bomb": (Action.QUARANTINE, "{path} could not be unpacked safely: {detail}",
             "send the files unpacked or split up; IT can release it if it is genuine"),
    "partial": (Action.QUARANTINE, "{path} is too large to read in full: {detail}",
                "split it into smaller files; IT can raise the [inspection] limits"),
    "uninspectable": (Action.QUARANTINE, "{path} could not be read: {detail}",
                      "check that the file opens; the DPO will review the message"),
}


@dataclass(frozen=True)
class Settings:
    action: Action
    actions: dict[str, Action]
    limits: Limits
    block_extensions: frozenset[str] = frozenset()   # more names refused as scripts
    allow_extensions: frozenset[str] = frozenset()   # names not refused as scripts


class Options(CheckOptions):
    """`[checks.attachments]`: what an attachment's bytes say it is."""

    action: Chosen | None = None
    """The check as a whole (default: on, with the actions below, when the table is there)."""
    executable: Chosen = Action.REJECT
    """A program."""
    script: Chosen = Action.REJECT
    """A script or shortcut that runs when opened."""
    macros: Chosen = Action.QUARANTINE
    """Office macros."""
    disguised: Chosen = Action.REJECT
    """A file whose name says another type than its bytes."""
    bomb: Chosen = Action.QUARANTINE
    """An archive that could not be unpacked safely."""
    partial: Chosen = Action.QUARANTINE
    """Too large to read in full ([inspection] limits)."""
    uninspectable: Chosen = Action.QUARANTINE
    """A file that could not be read."""
    block_extensions: Texts = ()
    """More names refused as scripts ("iso", "one")."""
    allow_extensions: Texts = ()
    """Names not to refuse as scripts (a program's bytes are refused whatever its name)."""

    @field_validator("block_extensions", "allow_extensions")
    @classmethod
    def _extensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        found = [e.strip().lstrip(".").lower() for e in value]
        if any(not e or not e.isalnum() for e in found):
            raise ValueError('must list extensions such as "iso" or "one"')
        return tuple(found)


def build(o: Options, shared: Shared) -> Settings:
    return Settings(action=o.chosen("action", Action.REJECT),
                    actions={rule: getattr(o, rule) for rule in RULES},
                    limits=shared.inspection, block_extensions=frozenset(o.block_extensions),
                    allow_extensions=frozenset(o.allow_extensions))


def kind(file: report.FileReport, settings: Settings) -> str | None:
    """"executable" by the bytes always; "script" by bytes or name, as IT has tuned it."""
    if file.family == "executable":
        return file.family
    extension = filetype.extension(file.name)
    if extension in settings.allow_extensions:
        return None
    if extension in settings.block_extensions:
        return "script"
    return file.dangerous


def _finding(settings: Settings, rule: str, file: report.FileReport, detail: str = "") -> Finding:
    _, message, advice = RULES[rule]
    return Finding(check=NAME, rule=rule, action=settings.actions[rule], clause=CLAUSE,
                   message=message.format(path=file.path, mime=file.mime, detail=detail),
                   advice=advice, evidence=f"{file.path}: {file.mime}, {file.size} bytes",
                   severity="high" if rule in ("executable", "script", "disguised") else "medium")


def judge(files: report.MailFiles, settings: Settings) -> list[Finding]:
    found: list[Finding] = []
    for file in files.walk():
        if danger := kind(file, settings):   # by name too: an encrypted zip shows its names
            found.append(_finding(settings, danger, file))
        elif file.extracted.macros:
            found.append(_finding(settings, "macros", file))
        for problem in file.problems:
            rule = {"limits": "bomb"}.get(problem.kind, problem.kind)
            found.append(_finding(settings, rule, file, problem.detail))
    return [f for f in found if f.action is not Action.OFF]


async def inspect(mail: Mail, settings: Settings) -> list[Finding]:
    return judge(await report.of(mail, settings.limits), settings)
