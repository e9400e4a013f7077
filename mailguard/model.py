"""Mail (envelope + raw bytes + lazy parsed views), Finding, Verdict and its Plan: what flows
down the pipeline. Plain data, no loader: every other layer may import it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email.message import Message
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING

from mailguard import mime
from mailguard.mime.parts import Part, scan

if TYPE_CHECKING:   # read only by type checkers: model imports no reader of its own
    import asyncio

    from mailguard.checks.personal import Reading
    from mailguard.files.report import MailFiles
    from mailguard.mime.views import TextViews

# Work on a message bigger than this (rewriting, scanning text) goes to a thread, so that one
# large message does not hold up every other session on the event loop.
INLINE_LIMIT = 512 * 1024


class Action(Enum):
    """What a finding does to a message, weakest first: the strongest one found decides."""

    OFF = "off"
    LOG = "log"
    NOTIFY = "notify"          # deliver, keep a copy, and tell the safeguarding lead
    QUARANTINE = "quarantine"
    REJECT = "reject"
    # Not now: a check could not run (a scanner is down) or the sender is past their hourly
    # limit. The sender's server keeps the message and retries (4xx); nothing is decided.
    DEFER = "defer"

    @property
    def rank(self) -> int:
        return list(Action).index(self)


# What a check may be told to do in its settings (DEFER is the checks' own to say).
CHOSEN = (Action.OFF, Action.LOG, Action.NOTIFY, Action.QUARANTINE, Action.REJECT)


# The plan: what is to be done to a message that goes out, as plain data, so it can be read,
# logged and stored with held mail, and carried out (rewrite.carry_out) without the checks.
@dataclass(frozen=True)
class TagSubject:
    """Put the personal tag in front of the subject."""

    tag: str


@dataclass(frozen=True)
class AddDisclaimer:
    """Add the trust's disclaimer to every displayed body, or, for a signed or encrypted
    message (`wrap`), wrap it untouched in a multipart with the disclaimer beside it."""

    text: str
    html: str
    position: str = "quote"
    wrap: bool = False


@dataclass(frozen=True)
class HideRecipients:
    """Take these addresses out of To/Cc (the envelope is untouched: each still gets it)."""

    hidden: tuple[str, ...]
    to: str     # what To says when nobody visible is left in it
    note: str   # the X-Mailguard-Bcc header's text


@dataclass(frozen=True)
class SplitPerRecipient:
    """Send each recipient a copy addressed to them alone (bcc mode "split"); a copy held or
    released later goes as HideRecipients says."""


@dataclass(frozen=True)
class Sign:
    """DKIM-sign the message as it leaves, with the key for this From address's domain."""

    address: str


Step = TagSubject | AddDisclaimer | HideRecipients | SplitPerRecipient | Sign
STEPS: tuple[type[Step], ...] = (TagSubject, AddDisclaimer, HideRecipients, SplitPerRecipient,
                                 Sign)   # the policy's order: signing last, after every change


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
    # Worked out once per message by the modules that read them (mime.views.views,
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
    steps: tuple[Step, ...] = ()   # what this finding asks be done to the message if it goes

    @property
    def rule_id(self) -> str:
        return f"{self.check}.{self.rule}"


UNAVAILABLE_CLAUSE = "mailguard: mail it could not check is never passed unchecked"


def unavailable(check: str, problem: str) -> Finding:
    """A check that could not run for a reason that will pass (a scanner is down): the
    message is deferred (4xx) so the sender's server retries, rather than held or passed."""
    return Finding(check=check, rule="unavailable", action=Action.DEFER,
                   clause=UNAVAILABLE_CLAUSE, severity="info",
                   message=f"the {check} check could not run: {problem}",
                   advice="nothing: your mail server will try again")


@dataclass(frozen=True)
class Verdict:
    """The one decision for a message, with every reason that led to it and the plan for
    it if it goes out (kept with held mail, so a release carries out exactly this)."""

    action: Action
    findings: tuple[Finding, ...] = ()
    reason: str = ""
    plan: tuple[Step, ...] = ()

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(f.rule_id for f in self.findings)

    @property
    def split(self) -> bool:
        return any(isinstance(s, SplitPerRecipient) for s in self.plan)

    @property
    def deferring(self) -> Finding | None:
        """The finding that put the message off, when the verdict is DEFER."""
        return next((f for f in self.findings if f.action is Action.DEFER), None)
