"""The config's own tables (everything but the checks, whose options live beside each check,
and the relay sources, beside them): what each key takes, its default, and why."""

from __future__ import annotations

import grp
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from mailguard.files.limits import Limits
from mailguard.settings.schema import (
    Address,
    Domain,
    Flag,
    KeyProblem,
    Listen,
    Networks,
    Number,
    Options,
    Size,
    Text,
    Texts,
    Whole,
    parse_listen,
)

# Personal mailbox providers: where staff's own accounts (and many parents') live.
FREEMAIL = ("gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk",
            "live.com", "live.co.uk", "msn.com", "yahoo.com", "yahoo.co.uk", "ymail.com",
            "icloud.com", "me.com", "mac.com", "aol.com", "aol.co.uk", "btinternet.com",
            "sky.com", "talktalk.net", "virginmedia.com", "ntlworld.com", "protonmail.com",
            "proton.me", "gmx.com", "gmx.co.uk", "mail.com", "zoho.com", "yandex.com")

# Upstreams that are cloud services: the return hop to them is always over verified TLS.
CLOUD_UPSTREAMS = (("mail.protection.outlook.com", "Microsoft 365"),
                   ("smtp.office365.com", "Microsoft 365"),
                   ("smtp-relay.gmail.com", "Google Workspace"),
                   ("smtp.gmail.com", "Google Workspace"), ("aspmx.l.google.com", "Google"))


class ServerOptions(Options):
    """`[server]`: the SMTP listener."""

    listen: Listen = ("127.0.0.1", 10025)
    """SMTP address, "host:port". Changing it needs a restart."""
    hostname: Text = ""
    """Name in the greeting and `Received` (default: the machine's FQDN)."""
    node: Text = ""
    """This gateway's name among several sharing one store: in each event, in `Received`
    when the store is shared, and on the desk beside what it held (default: the host name)."""
    max_message_size: Size = 35 * 1024 * 1024
    """Advertised as SIZE; bigger: `552 5.3.4`."""
    max_recipients: Whole = Field(1000, ge=1)
    """More recipients: `452 4.5.3`."""
    tls_cert: Text | None = None
    """Enables STARTTLS (PEM, set with `tls_key`); read again on SIGHUP and when the file changes.
    `check-config` and the start-up log warn of it expiring within 30 days."""
    tls_key: Text | None = None
    """The certificate's private key (PEM)."""
    auth_users_file: Text | None = None
    """SMTP AUTH users (lines from `mailguard passwd USER`); only offered after STARTTLS."""
    auth_max_failures: Whole = Field(5, ge=1)
    """Past this many failed sign-ins from one address, or for one user, in `auth_window`: `454
    4.7.0`, the password not even checked, until the oldest failure ages out. Counted in
    `attempts.db` in the data folder, shared by every worker; each failure, refusal and sign-in
    is in the audit log, and `/metrics` counts them."""
    auth_window: Number = Field(900.0, ge=1)
    """Seconds over which failed sign-ins are counted."""
    proxy_protocol: Flag = False
    """Expect a PROXY protocol header (a load balancer in front), from `proxy_from` only."""
    proxy_from: Networks = Field(default_factory=lambda: _nets("127.0.0.0/8", "::1/128"))
    """The load balancers that may send the PROXY header."""
    trusted_networks: Networks | None = None
    """Deprecated: still read, as a `network` source named `trusted_networks`, and `check-config`
    says so. Write a `[sources.NAME]` table instead."""
    workers: Whole = Field(1, ge=1)
    """N processes on one port (SO_REUSEPORT); needs a restart."""
    max_connections: Whole = Field(500, ge=1)
    """Sessions at once per process; more: `421 4.7.0`."""
    idle_timeout: Number = Field(300.0, ge=1)
    """Seconds a silent session is kept open."""
    data_timeout: Number = Field(600.0, ge=1)
    """Seconds DATA may take."""
    shutdown_timeout: Number = Field(30.0, ge=0)
    """Seconds transactions in flight get to finish on SIGTERM."""
    max_line_length: Size = 10000
    """Longer line: `500 5.5.6` (at least 1000: RFC 5322's 998 + CRLF)."""
    max_header_size: Size = 256 * 1024
    """Larger header block: `552 5.3.4`."""
    unparseable: Literal["quarantine", "tempfail"] = "quarantine"
    """Mail that cannot be read: hold it for review, or `tempfail` (451)."""
    stamp_secret_file: Text | None = None
    """The HMAC key of the `X-Mailguard` stamp; share it between instances (default:
    `<data_dir>/stamp.key`)."""

    @field_validator("max_line_length")
    @classmethod
    def _rfc5322(cls, value: int) -> int:
        if value < 1000:
            raise ValueError("must be at least 1000 (RFC 5322 allows 998 + CRLF)")
        return value


def _nets(*items: str) -> Networks:
    import ipaddress

    return tuple(ipaddress.ip_network(i) for i in items)


class UpstreamOptions(Options):
    """`[upstream]`: where checked mail goes next."""

    url: Text = "maildir:var/outbox"
    """`smtp://host:port`, `smtp+starttls://host:port`, `smtps://host:port`, or `maildir:FOLDER`
    for development. Microsoft 365 and Google upstreams (`*.mail.protection.outlook.com`,
    `smtp-relay.gmail.com` …) only over TLS."""
    username: Text | None = None
    """SMTP AUTH user for the upstream; refused over plain `smtp://`."""
    password: Text | None = None
    """Its password (or both in the URL)."""
    timeout: Number = Field(60.0, ge=1)
    """Seconds to wait for the upstream."""
    tls_verify: Flag = True
    """Verify the upstream's certificate; always on for Microsoft 365 and Google."""
    ca_file: Text | None = None
    """CA bundle for the upstream's certificate."""
    tls_cert: Text | None = None
    """A client certificate mailguard shows the upstream (Microsoft 365's inbound connector for
    the return hop can identify us by its domain); TLS URLs only; read for each new connection,
    so a renewed certificate is used without a restart."""
    tls_key: Text | None = None
    """The client certificate's private key."""

    @property
    def scheme(self) -> str:
        return self.url.partition(":")[0]

    @model_validator(mode="after")
    def _sound(self) -> UpstreamOptions:
        scheme, _, rest = self.url.partition(":")
        host, port = self.address
        if scheme == "maildir":
            if not rest:
                raise KeyProblem("url", 'maildir needs a folder, e.g. "maildir:var/outbox"')
        elif scheme not in ("smtp", "smtp+starttls", "smtps"):
            raise KeyProblem("url", 'must start with "maildir:", "smtp://", "smtp+starttls://" '
                             f'or "smtps://"; got {self.url!r}')
        elif not host:
            raise KeyProblem("url", f'{self.url!r} has no host; write "smtp://host:port"')
        if self.login[0] and scheme == "smtp":
            raise KeyProblem("username", "refusing to send a password in clear: use "
                             "smtp+starttls:// or smtps://")
        cloud = next((name for suffix, name in CLOUD_UPSTREAMS
                      if host.lower().rstrip(".").endswith(suffix)), None)
        if cloud and scheme not in ("smtp+starttls", "smtps"):
            raise KeyProblem("url", f"{host} is {cloud}, which mailguard reaches only over "
                             f"TLS: use smtp+starttls://{host}:{port}")
        if cloud and not self.tls_verify:
            raise KeyProblem("tls_verify", f"{host} is {cloud}: its certificate is always "
                             "verified")
        return self

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of an SMTP upstream; ("", 0) for a maildir."""
        scheme = self.scheme
        if scheme not in ("smtp", "smtp+starttls", "smtps"):
            return "", 0
        parts = urlsplit(self.url)
        try:
            return parts.hostname or "", parts.port or (465 if scheme == "smtps" else 25)
        except ValueError:
            raise KeyProblem("url", f"{self.url!r} has a bad port") from None

    @property
    def login(self) -> tuple[str | None, str | None]:
        from urllib.parse import unquote

        parts = urlsplit(self.url) if self.scheme != "maildir" else None
        user = self.username or (unquote(parts.username) if parts and parts.username else None)
        word = self.password or (unquote(parts.password) if parts and parts.password else None)
        return user, word


class OrganisationOptions(Options):
    """`[organisation]`: the trust and its people."""

    name: Text
    """The trust's name, as disclaimers and notices give it."""
    domains: tuple[Domain, ...] = Field((), validate_default=True)
    """The trust's mail domains (and their subdomains): only these may send."""
    postmaster: Address = ""
    """Signs notices and hears of rate-limit bursts (default: postmaster@ the first domain)."""
    safeguarding_lead: Address = ""
    """The designated safeguarding lead: hears of safeguarding holds and language alerts."""
    dpo: Address = ""
    """The Data Protection Officer: hears of held mail."""
    freemail_domains: Texts = FREEMAIL
    """Personal mailbox providers (Gmail, Outlook, iCloud, Yahoo, BT …), for the confidential,
    disclosure and personal checks."""

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("domains")
    @classmethod
    def _some(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("list at least one of the organisation's mail domains")
        return value


class StorageOptions(Options):
    """`[storage]`: where events, held mail and keys live."""

    data_dir: Text = "var"
    """The data folder (0700): database, held mail, secrets. Changing it needs a restart."""
    event_retention_days: Whole = Field(90, ge=1)
    """Days events are kept; applied hourly by the running gateway and by `mailguard purge`."""
    quarantine_retention_days: Whole = Field(30, ge=1)
    """Days held mail is kept; each purged message leaves an audit entry."""
    quarantine_key_env: Text = ""
    """An environment variable holding the AES-256 key held mail is sealed with (base64 of 32
    bytes), instead of the file."""
    quarantine_key_file: Text | None = None
    """The key file: made (0600) when the gateway first starts, never by `check-config`. Keep it
    out of the data folder in production (default: `<data_dir>/quarantine.key`)."""
    quarantine_old_key_files: Texts = ()
    """Keys being rotated out: they open what they sealed and seal nothing new; `mailguard
    quarantine rekey` re-seals the rest under the current key (docs/deploy/operations.md)."""
    url: Text = "sqlite:"
    """Where events, held mail, the audit trail and reviewer accounts live: `"sqlite:"` (a
    database in the data folder, for one machine) or `"postgresql://user@host[:port]/db"`,
    shared by several gateways and one desk (docs/deploy/cluster.md). libpq's own keys may
    follow (`?sslmode=verify-full`); the password never goes in the URL."""
    password_env: Text = ""
    """An environment variable holding the PostgreSQL password."""
    password_file: Text | None = None
    """A file (0600) holding the PostgreSQL password on its first line."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value == "sqlite:":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f'{value!r}: use "sqlite:" or "postgresql://user@host/database"')
        if parts.password is not None:
            raise ValueError("the URL holds a password: put it in password_env or "
                             "password_file, where it stays out of the config and the logs")
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError(f"{value!r}: a PostgreSQL URL needs a host and a database, as in "
                             "postgresql://mailguard@db.trust.internal/mailguard")
        return value

    @model_validator(mode="after")
    def _password(self) -> StorageOptions:
        if self.url == "sqlite:" and (self.password_env or self.password_file):
            raise ValueError("password_env and password_file are for a postgresql:// url")
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self


class WebOptions(Options):
    """`[web]`: the review desk."""

    listen: Text = "127.0.0.1:8025"
    """The review desk, `/healthz` and `/metrics` (Prometheus); `""` turns it off. It listens
    before the SMTP port answers."""
    public_url: Text | None = None
    """How reviewers reach the desk, for links in notices (default: `http://<listen>`)."""
    secure_cookies: Flag | None = None
    """Cookies only over HTTPS (default: true unless the desk is on loopback)."""
    session_minutes: Whole = Field(60, ge=5)
    """Signed out after this many minutes idle (12 h at most)."""
    trusted_proxies: Networks = ()
    """The HTTPS reverse proxies in front of the desk: from them, `X-Forwarded-For` gives the
    reviewer's own address (audit log, sign-in throttle)."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value:
            parse_listen(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError("must be a URL such as https://mailguard.example.sch.uk, "
                             f"got {value!r}")
        return value


class NoticesOptions(Options):
    """`[notices]`: who hears of held mail, and how often."""

    held: Flag = True
    """Tell the DPO (and the lead, for safeguarding holds) of each hold."""
    digest_after: Whole = Field(5, ge=1)
    """More than this many holds in an hour: one digest per `digest_minutes` instead."""
    digest_minutes: Whole = Field(30, ge=1)
    """At most one digest per reviewer this often."""
    sender_held: Flag = False
    """Tell the sender their message is held."""
    sender_released: Flag = True
    """Tell the sender when it is released (a rejection always is)."""
    interval: Number = Field(20.0, ge=0.5)
    """Seconds between sends of what is due."""


def milter_socket(value: str) -> str:
    """libmilter's own spelling of a listen address: Postfix writes `inet:host:port`,
    libmilter `inet:port@host`; a UNIX socket is `unix:/path` in both."""
    kind, _, rest = value.partition(":")
    if kind in ("unix", "local") and rest.startswith("/"):
        return f"unix:{rest}"
    if kind in ("inet", "inet6"):
        port, at, host = rest.partition("@")
        if not at:
            host, _, port = rest.rpartition(":")
            host = host.strip("[]")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return f"{kind}:{port}@{host}"
    raise ValueError('must be "inet:HOST:PORT" such as "inet:127.0.0.1:8891", or '
                     f'"unix:/run/mailguard/milter.sock"; got {value!r}')


class MilterOptions(Options):
    """`[milter]`: `mailguard milter`, the same policy inside the school's own Postfix or
    Sendmail (`smtpd_milters`), instead of as its smarthost."""

    listen: Text = "inet:127.0.0.1:8891"
    """Where the MTA reaches mailguard: `inet:HOST:PORT` or `unix:/PATH` (keep it on loopback
    or a socket only the MTA can open: whatever connects here can have mail checked)."""
    group: Text = ""
    """For a UNIX socket: the group given it (mode 0660), the MTA's own (`postfix`), so the
    MTA can connect and nobody else can; default mailguard's own group."""
    timeout: Whole = Field(7210, ge=10)
    """Seconds mailguard waits on a silent MTA connection (between messages) before closing
    it."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        milter_socket(value)
        return value

    @field_validator("group")
    @classmethod
    def _group(cls, value: str) -> str:
        if value:
            try:
                grp.getgrnam(value)
            except KeyError:
                raise ValueError(f"no group {value!r} on this machine") from None
        return value

    @property
    def socket(self) -> str:
        return milter_socket(self.listen)

    @property
    def loopback(self) -> bool:
        """Only this machine (or, for a UNIX socket, whoever the file lets in) can connect."""
        kind, _, rest = self.socket.partition(":")
        host = rest.partition("@")[2]
        return kind == "unix" or host in ("127.0.0.1", "::1", "localhost")


_LIMITS = Limits()


class InspectionOptions(Options):
    """`[inspection]`: bounds on reading attachments (archives, documents)."""

    max_depth: Whole = Field(_LIMITS.max_depth, ge=1)
    """Archives inside archives, at most, per message."""
    max_members: Whole = Field(_LIMITS.max_members, ge=1)
    """Files in one archive, at most."""
    max_expanded: Size = _LIMITS.max_expanded
    """Bytes unpacked from one message, at most."""
    max_ratio: Whole = Field(_LIMITS.max_ratio, ge=2)
    """Compression ratio past which an archive is a bomb."""
    max_text: Size = _LIMITS.max_text
    """Characters of text read per file."""
    max_rows: Whole = Field(_LIMITS.max_rows, ge=10)
    """Spreadsheet rows read per sheet, at most."""
    time_limit: Number = Field(_LIMITS.time_limit, ge=0.1)
    """Seconds the attachments of one message may take to read."""

    def limits(self) -> Limits:
        return Limits(**self.model_dump())


class DirectoryOptions(Options):
    """`[directory]`: who each address belongs to."""

    file: Text | None = None
    """The contacts CSV (address, role: parent, pupil, staff, supplier)."""


class DkimDomainOptions(Options):
    """`[dkim.domains."DOMAIN"]`: one signing key."""

    selector: Text
    """The DNS selector the key is published under."""
    key: Text
    """The private key file (mailguard dkim keygen)."""


class DkimOptions(Options):
    """`[dkim]`: signing what leaves."""

    canonicalization: Literal["relaxed/simple", "relaxed/relaxed", "simple/simple",
                              "simple/relaxed"] = "relaxed/simple"
    """Header/body canonicalisation."""
    domains: dict[Domain, DkimDomainOptions] = Field(default_factory=dict)
    """One key per signing domain."""
