"""Mail (envelope + raw bytes + lazy parsed views), Finding and Verdict: what flows down the pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from functools import cached_property
from typing import TYPE_CHECKING

from mailguard import mime
from mailguard.config import Action
from mailguard.parts import Part, scan

if TYPE_CHECKING:   # read only by type checkers: model imports no reader of its own
    import asyncio

    from mailguard.checks.personal import Reading
    from mailguard.files.report import MailFiles
    from mailguard.textviews import TextViews

# Work on a message bigger than this (rewriting, scanning text) goes to a thread, so that one
# large message does not hold up every other session on the event loop.
INLINE_LIMIT = 512 * 1024


class Unavailable(Exception):
    """A check could not run for a reason that will pass (a scanner is down): defer the
    message with a 4xx so the sender's server retries, rather than hold or pass it."""


class RateLimited(Unavailable):
    """The sender is past their hourly limit: defer (4xx) and tell IT, since a burst is how a
    compromised account looks."""

    def __init__(self, sender: str, sent: int, limit: int) -> None:
        super().__init__(f"{sender} has sent to {sent} recipients in the last hour; "
                         f"the limit is {limit}")
        self.sender, self.sent, self.limit = sender, sent, limit


@dataclass(frozen=True)
class Client:
    """Who handed us the message: facts from the SMTP session."""

    ip: str
    helo: str = ""
    auth_user: str | None = None
    tls: bool = False
    smtputf8: bool = False
    esmtp: bool = True
    source: str = ""   # the named source that admitted it (sources.NAME)


@dataclass(frozen=True)
class Envelope:
    """SMTP envelope; kept apart from headers so header rewrites never change delivery."""

    sender: str
    recipients: tuple[str, ...]
    mail_options: tuple[str, ...] = ()

    @property
    def recipient_domains(self) -> tuple[str, ...]:
        return tuple(sorted({r.rpartition("@")[2].lower() for r in self.recipients}))


@dataclass
class Mail:
    """One message in flight. `raw` is the truth; parsed views are built only when asked."""

    id: str
    envelope: Envelope
    client: Client
    raw: bytes
    received_at: float = field(default_factory=time.time)
    # Worked out once per message by the modules that read them (textviews.views,
    # files.report.of, Mail.addresses, checks.personal.reading): declared, so the cache is
    # typed, not a bag of keys; no check sets anything else on a message.
    views_cache: TextViews | None = field(default=None, init=False, repr=False, compare=False)
    files_cache: asyncio.Future[MailFiles] | None = field(default=None, init=False, repr=False,
                                                          compare=False)
    addresses_cache: dict[str, list[tuple[str, str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    personal_cache: Reading | None = field(default=None, init=False, repr=False,
                                           compare=False)

    @cached_property
    def header_end(self) -> int:
        return mime.header_end(self.raw)

    @cached_property
    def headers(self) -> Message:
        """The header block alone (compat32: no normalising of what we do not own)."""
        return mime.parse_headers(self.raw[: self.header_end])

    def addresses(self, field: str) -> list[tuple[str, str]]:
        """(display name, address) pairs of an address header, parsed once per message."""
        if field not in self.addresses_cache:
            self.addresses_cache[field] = mime.address_pairs(self.headers, field)
        return self.addresses_cache[field]

    @cached_property
    def subject(self) -> str:
        """The Subject as people read it (encoded words decoded), worked out once."""
        return mime.decoded(self.headers, "Subject")

    @cached_property
    def parts(self) -> Part:
        """The MIME tree as byte ranges (cheap: headers of each part, boundaries found in bytes)."""
        return scan(self.raw)


@dataclass(frozen=True)
class Finding:
    """One reason a check raised: which rule, how bad, which policy clause, what to tell people."""

    check: str
    rule: str
    action: Action
    clause: str
    message: str
    advice: str
    evidence: str = ""
    severity: str = "high"
    alert: bool = False   # tell the safeguarding lead, whatever happens to the message
    heading: str = ""     # the safeguarding heading (UKSIC's "appropriate monitoring" ones)
    rewrite: Callable[[bytes], bytes] | None = field(default=None, compare=False, repr=False)
    # Set when each recipient must get a copy addressed to them alone (bcc mode "split").
    per_recipient: Callable[[bytes, str], bytes] | None = field(default=None, compare=False,
                                                                 repr=False)

    @property
    def rule_id(self) -> str:
        return f"{self.check}.{self.rule}"


@dataclass(frozen=True)
class Verdict:
    """The one decision for a message, with every reason that led to it."""

    action: Action
    findings: tuple[Finding, ...] = ()
    reason: str = ""

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(f.rule_id for f in self.findings)

    @property
    def rewrites(self) -> tuple[Callable[[bytes], bytes], ...]:
        """Changes to make to a message that is delivered, in check order."""
        if self.action in (Action.QUARANTINE, Action.REJECT):
            return ()
        return tuple(f.rewrite for f in self.findings
                     if f.rewrite is not None and f.per_recipient is None)

    @property
    def split(self) -> Callable[[bytes, str], bytes] | None:
        """How to address each recipient's own copy, when the message is to be split."""
        if self.action in (Action.QUARANTINE, Action.REJECT):
            return None
        return next((f.per_recipient for f in self.findings if f.per_recipient), None)
