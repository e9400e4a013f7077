"""What every check's settings may refer to once built: the organisation, its directory, the
bounds on reading attachments, the data folder, and the checks built before it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailguard.files.limits import Limits
from mailguard.settings.sections import FREEMAIL


@dataclass(frozen=True)
class OrganisationSettings:
    name: str
    domains: tuple[str, ...]
    postmaster: str
    safeguarding_lead: str = ""   # the designated safeguarding lead, told of alerts
    dpo: str = ""                 # the Data Protection Officer, told of held mail
    freemail_domains: frozenset[str] = frozenset(FREEMAIL)   # personal mailbox providers

    def owns(self, address: str) -> bool:
        """True when the address is in one of the organisation's domains or their subdomains."""
        domain = address.rpartition("@")[2].lower().rstrip(".")
        return any(domain == d or domain.endswith("." + d) for d in self.domains)


@dataclass(frozen=True)
class Shared:
    """The facts a check's build step may use (its options are its own)."""

    organisation: OrganisationSettings
    directory: Any  # mailguard.school.directory.Directory, or None without a directory file
    base: Path      # relative paths in the config are relative to this folder
    inspection: Limits = field(default_factory=Limits)   # bounds on reading attachments
    data_dir: Path | None = None   # for state the worker processes share (hourly counts)
    storage: Any = None            # config.StorageSettings: where the shared store is, if any
    # Settings of the checks built so far, in registry order: the disclaimer asks the
    # personal check's reading whether mail is personal, under that check's own settings.
    checks: dict[str, Any] = field(default_factory=dict)

    def path(self, value: str) -> Path:
        """A path from the config: relative ones are relative to `base`."""
        p = Path(value)
        return p if p.is_absolute() else self.base / p


@dataclass(frozen=True)
class DkimSettings:
    keys: Mapping[str, Any]  # signing domain → mailguard.delivery.dkim.Key
    canonicalization: str
