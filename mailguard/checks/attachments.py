"""Attachments judged by what their bytes are: executables, scripts, Office macros, files
whose name disguises their type, archive bombs, and files that cannot be read.

soke 'Systems Use and Data Security' treats .exe as suspicious and lets the school block
attachments; excalibur section 4 and bourne 'Virus Protection' ask for the same care.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailguard.config import Section, Shared
from mailguard.files import filetype, report
from mailguard.files.limits import Limits
from mailguard.model import Action, Finding, Mail

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


def settings_from(sec: Section, shared: Shared) -> Settings:
    action = sec.action("action", Action.REJECT if sec.table else Action.OFF)
    actions = {rule: sec.action(rule, default) for rule, (default, _, _) in RULES.items()}
    names = {key: frozenset(e.strip().lstrip(".").lower() for e in sec.strings(key, []))
             for key in ("block_extensions", "allow_extensions")}
    for key, found in names.items():
        if any(not e or not e.isalnum() for e in found):
            raise sec.error(key, 'must list extensions such as "iso" or "one"')
    return Settings(action=action, actions=actions, limits=shared.inspection, **names)


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
