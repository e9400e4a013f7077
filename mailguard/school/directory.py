"""Who an address belongs to: parent, pupil, staff, supplier or other, from a CSV that IT keeps
(or imports from the school's MIS). Without one, anything outside the organisation's domains
counts as external and everything inside as staff.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mailguard.settings.schema import KeyProblem
from mailguard.settings.sections import DirectoryOptions

ROLES = ("parent", "pupil", "staff", "supplier", "other")
COLUMNS = ("email", "role", "name", "pupils")


class DirectoryError(ValueError):
    """A directory row that cannot be used, worded `file: line N: problem`."""


@dataclass(frozen=True)
class Contact:
    email: str
    role: str
    name: str = ""
    pupils: str = ""


@dataclass(frozen=True)
class Directory:
    contacts: Mapping[str, Contact]
    problems: tuple[str, ...] = ()   # rows left out, each as `file: line N: problem`

    def role_of(self, address: str) -> str | None:
        contact = self.contacts.get(address.strip().lower())
        return contact.role if contact else None

    @classmethod
    def load(cls, path: Path) -> Directory:
        return cls.parse(path.read_text(encoding="utf-8-sig"), str(path))

    @classmethod
    def parse(cls, text: str, name: str = "directory.csv") -> Directory:
        reader = csv.DictReader(io.StringIO(text))
        missing = {"email", "role"} - {f.strip().lower() for f in reader.fieldnames or []}
        if missing:
            raise DirectoryError(f"{name}: line 1: needs columns {', '.join(COLUMNS)}; "
                                 f"missing {', '.join(sorted(missing))}")
        contacts: dict[str, Contact] = {}
        problems: list[str] = []
        for row in reader:
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            email, role = row.get("email", "").lower(), row.get("role", "").lower()
            if not email and not role:
                continue
            problem = _row_problem(email, role)
            if problem:   # one bad row must not cost the school every other contact
                problems.append(f"{name}: line {reader.line_num}: {problem}")
                continue
            contacts[email] = Contact(email, role, row.get("name", ""), row.get("pupils", ""))
        return cls(contacts, tuple(problems))


def _row_problem(email: str, role: str, written: str = "", hint: str = "") -> str | None:
    if "@" not in email or " " in email or email.startswith("@") or email.endswith("@"):
        return f"{email!r} is not an email address"
    if role not in ROLES:
        return f"role {(written or role)!r} is not one of {', '.join(ROLES)}{hint}"
    return None


def role_of(directory: Directory | None, address: str) -> str | None:
    """The address's role, or None when it is not listed or there is no directory at all."""
    return directory.role_of(address) if directory is not None else None


def write(contacts: Iterable[Contact], path: Path) -> int:
    """Write the directory CSV (atomically); returns how many contacts it holds."""
    rows = sorted({c.email: c for c in contacts}.values(), key=lambda c: (c.role, c.email))
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        out.writerows((c.email, c.role, c.name, c.pupils) for c in rows)
    tmp.replace(path)
    return len(rows)


def import_mis(text: str, columns: Mapping[str, str], role: str | None,
               role_values: Mapping[str, str], name: str = "export.csv",
               ) -> tuple[list[Contact], list[str]]:
    """Contacts from a MIS export (SIMS, Arbor, Bromcom …) whose column names differ by system.

    `columns` maps our fields (email, role, name, pupils) to the export's column names;
    `role` fixes the role for every row (a parents' contact list); `role_values` maps the
    export's words (Mother, Father, Carer …) to ours. Bad rows are left out and returned,
    each as `file: line N: problem`.
    """
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    for ours, theirs in columns.items():
        if theirs not in fields:
            raise DirectoryError(f"{name}: line 1: no column {theirs!r} for {ours}; columns "
                                 f"are {', '.join(fields)}")
    contacts, problems = [], []
    for row in reader:
        email = row.get(columns.get("email", "email"), "").strip().lower()
        if not email:
            continue
        value = role or row.get(columns.get("role", "role"), "").strip()
        mapped = role_values.get(value.lower(), value.lower())
        problem = _row_problem(email, mapped, value, f"; map it with --role-value {value}=parent")
        if problem:
            problems.append(f"{name}: line {reader.line_num}: {problem}")
            continue
        contacts.append(Contact(email, mapped,
                                row.get(columns.get("name", "name"), "").strip(),
                                row.get(columns.get("pupils", "pupils"), "").strip()))
    return contacts, problems


def build(o: DirectoryOptions, base: Path) -> Directory | None:
    """The [directory] table: the contacts file, read now. A file that cannot be used is a
    config error; bad rows are left out and listed in `problems` (logged at start)."""
    if not o.file:
        return None
    path = Path(o.file) if Path(o.file).is_absolute() else base / o.file
    try:
        return Directory.load(path)
    except FileNotFoundError:
        raise KeyProblem("file", f"{path} does not exist") from None
    except (DirectoryError, UnicodeDecodeError, OSError) as e:
        raise KeyProblem("file", str(e)) from None
