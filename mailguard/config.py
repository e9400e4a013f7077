"""TOML → typed, frozen settings; every error reads `file: key: problem` so IT can fix it."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from mailguard import sources
from mailguard.files.limits import Limits
from mailguard.model import CHOSEN, Action

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """A config problem, worded `file: key: problem`."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3}


class Section:
    """One TOML table, read key by key; `done()` rejects keys nobody asked for (typos)."""

    def __init__(self, file: str, name: str, table: Any) -> None:
        self.file, self.name = file, name
        if table is None:
            table = {}
        if not isinstance(table, dict):
            raise self.error("", "must be a table")
        self.table: dict[str, Any] = table
        self.seen: set[str] = set()

    def error(self, key: str, problem: str) -> ConfigError:
        where = f"{self.name}.{key}" if key else self.name
        return ConfigError(f"{self.file}: {where}: {problem}")

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any, what: str) -> Any:
        self.seen.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        if isinstance(value, bool) and kind is not bool:
            raise self.error(key, f"must be {what}, not true/false")
        if not isinstance(value, kind):
            raise self.error(key, f"must be {what}, got {value!r}")
        return value

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        if required and key not in self.table:
            self.seen.add(key)
            raise self.error(key, "is required")
        value = self._get(key, str, default, "a string")
        if required and not value:
            raise self.error(key, "must not be empty")
        return value

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        value = self._get(key, int, default, "a whole number")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return int(value)

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self._get(key, (int, float), default, "a number")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        return bool(self._get(key, bool, default, "true or false"))

    def size(self, key: str, default: str) -> int:
        """A byte size: 35MiB, 100KB, 1048576."""
        value = self._get(key, (str, int), default, 'a size such as "35MiB"')
        if isinstance(value, int):
            return value
        m = _SIZE.match(value)
        if not m:
            raise self.error(key, f'must be a size such as "35MiB" or "100KB", got {value!r}')
        return int(float(m.group(1)) * _UNITS[(m.group(2) or "B").lower()])

    def strings(self, key: str, default: list[str]) -> tuple[str, ...]:
        value = self._get(key, list, default, "a list of strings")
        for item in value:
            if not isinstance(item, str):
                raise self.error(key, f"must be a list of strings, has {item!r}")
        return tuple(value)

    def choice(self, key: str, default: str, options: tuple[str, ...]) -> str:
        value = self.string(key, default)
        if value not in options:
            raise self.error(key, f"must be one of {', '.join(options)}; got {value!r}")
        return value

    def action(self, key: str, default: Action) -> Action:
        return Action(self.choice(key, default.value, tuple(a.value for a in CHOSEN)))

    def path(self, key: str, base: Path, default: str | None = None) -> Path | None:
        value = self.string(key, default)
        if not value:
            return None
        p = Path(value)
        return p if p.is_absolute() else base / p

    def existing_file(self, key: str, base: Path) -> Path | None:
        p = self.path(key, base)
        if p is not None and not p.is_file():
            raise self.error(key, f"file {p} does not exist")
        return p

    def table_of(self, key: str) -> Section:
        self.seen.add(key)
        return Section(self.file, f"{self.name}.{key}", self.table.get(key))

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown key (check the spelling; see README.md)")


def parse_listen(sec: Section, key: str, default: str) -> tuple[str, int]:
    value = sec.string(key, default)
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise sec.error(key, f'must be "host:port" such as "127.0.0.1:10025", got {value!r}')
    return host, int(port)


def parse_domain(sec: Section, key: str, value: str) -> str:
    d = value.strip().lower().rstrip(".")
    if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}", d):
        raise sec.error(key, f"{value!r} is not a domain name")
    return d


@dataclass(frozen=True)
class ServerSettings:
    listen: tuple[str, int]
    hostname: str
    max_message_size: int
    max_recipients: int
    tls_cert: Path | None
    tls_key: Path | None
    auth_users_file: Path | None
    auth_max_failures: int   # failed sign-ins per address or user in auth_window: then 454
    auth_window: float
    proxy_protocol: bool
    proxy_from: tuple[Network, ...]
    workers: int
    max_connections: int
    idle_timeout: float
    data_timeout: float
    shutdown_timeout: float
    max_line_length: int
    max_header_size: int
    unparseable: str
    stamp_secret_file: Path


@dataclass(frozen=True)
class UpstreamSettings:
    url: str
    scheme: str  # "maildir", "smtp", "smtp+starttls", "smtps"
    host: str
    port: int
    path: Path | None
    username: str | None
    password: str | None
    timeout: float
    tls_verify: bool
    ca_file: Path | None
    # Our client certificate for the upstream: Microsoft 365's inbound connector for the
    # return hop can identify mailguard by its certificate's domain.
    tls_cert: Path | None = None
    tls_key: Path | None = None


# Personal mailbox providers: where staff's own accounts (and many parents') live.
FREEMAIL = ("gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk",
            "live.com", "live.co.uk", "msn.com", "yahoo.com", "yahoo.co.uk", "ymail.com",
            "icloud.com", "me.com", "mac.com", "aol.com", "aol.co.uk", "btinternet.com",
            "sky.com", "talktalk.net", "virginmedia.com", "ntlworld.com", "protonmail.com",
            "proton.me", "gmx.com", "gmx.co.uk", "mail.com", "zoho.com", "yandex.com")


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
    """What every check's settings may refer to: who the organisation is, who its contacts are."""

    organisation: OrganisationSettings
    directory: Any  # mailguard.school.directory.Directory, or None without a directory file
    base: Path      # relative paths in the config are relative to this folder
    inspection: Limits = field(default_factory=Limits)   # bounds on reading attachments
    data_dir: Path | None = None   # for state the worker processes share (hourly counts)
    # Settings of the checks built so far, in REGISTRY order: the disclaimer reads the personal
    # check's tag here, so the pattern is set in one place.
    checks: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path
    event_retention_days: int
    quarantine_retention_days: int
    quarantine_key: bytes = field(default=b"", repr=False)   # AES-256-GCM; never in the store
    quarantine_key_source: str = ""   # where it came from, for check-config
    quarantine_old_keys: tuple[bytes, ...] = field(default=(), repr=False)   # being rotated out


def _quarantine_key(sec: Section, data_dir: Path, base: Path) -> tuple[bytes, str]:
    """The key held mail is sealed with: from the named environment variable, or from the
    key file (made on first use, 0600; by default in the data folder)."""
    from mailguard.store.sealing import key_file, parse_key

    env = sec.string("quarantine_key_env", "")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise sec.error("quarantine_key_env", f"the environment variable {env} is not set")
        try:
            return parse_key(value), f"environment variable {env}"
        except ValueError as e:
            raise sec.error("quarantine_key_env", f"{env} {e}") from None
    path = sec.path("quarantine_key_file", base) or data_dir / "quarantine.key"
    return _private_key(sec, "quarantine_key_file", path, key_file, "read or make"), f"file {path}"


def _private_key(sec: Section, key: str, path: Path, read: Callable[[Path], T],
                 verb: str = "read") -> T:
    """A key read from a file that only its owner may read, or `file: key: problem`."""
    try:
        value = read(path)
        if path.stat().st_mode & 0o077:
            raise sec.error(key, f"{path} can be read by other users: chmod 600 {path}")
    except ValueError as e:
        raise sec.error(key, f"{path} {e}") from None
    except OSError as e:
        raise sec.error(key, f"{path}: cannot {verb} it: {e}") from None
    return value


@dataclass(frozen=True)
class NoticeSettings:
    """Who hears of held mail, and how often."""

    held: bool = True            # tell the DPO (and the safeguarding lead, for theirs)
    digest_after: int = 5        # more than this many in an hour: one digest instead
    digest_minutes: int = 30     # at most one digest per reviewer this often
    sender_held: bool = False    # tell the sender their message is held
    sender_released: bool = True # tell the sender when it is released (rejection always is)
    interval: float = 20.0       # seconds between sends of what is due


@dataclass(frozen=True)
class WebSettings:
    listen: tuple[str, int] | None
    public_url: str = ""           # how reviewers reach the desk, for links in notices
    secure_cookies: bool = True    # Secure cookies: the desk is reached over HTTPS
    session_minutes: int = 60      # signed out after this long without a request
    trusted_proxies: tuple[str, ...] = ()   # reverse proxies whose X-Forwarded-For is believed


@dataclass(frozen=True)
class DkimSettings:
    keys: Mapping[str, Any]  # signing domain → mailguard.delivery.dkim.Key
    canonicalization: str


@dataclass(frozen=True)
class Settings:
    file: str
    server: ServerSettings
    upstream: UpstreamSettings
    organisation: OrganisationSettings
    storage: StorageSettings
    web: WebSettings
    checks: Mapping[str, Any] = field(default_factory=dict)
    directory: Any = None
    clauses: Mapping[str, str] = field(default_factory=dict)   # check → the policy it cites
    preset: str = ""
    preset_overridden: tuple[str, ...] = ()   # the preset's keys this file sets otherwise
    dkim: DkimSettings = field(default_factory=lambda: DkimSettings({}, "relaxed/simple"))
    inspection: Limits = field(default_factory=Limits)   # bounds on reading attachments
    notices: NoticeSettings = field(default_factory=NoticeSettings)
    sources: Any = None   # mailguard.sources.Sources: who may relay, and how they prove it


def _notices(sec: Section) -> NoticeSettings:
    return NoticeSettings(
        held=sec.boolean("held", True),
        digest_after=sec.integer("digest_after", 5, minimum=1),
        digest_minutes=sec.integer("digest_minutes", 30, minimum=1),
        sender_held=sec.boolean("sender_held", False),
        sender_released=sec.boolean("sender_released", True),
        interval=sec.number("interval", 20.0, minimum=0.5))


def _networks(sec: Section, key: str, default: list[str]) -> tuple[Network, ...]:
    nets = []
    for item in sec.strings(key, default):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise sec.error(key, f"{item!r} is not an address or network") from None
    return tuple(nets)


def _server(sec: Section, base: Path, data_dir: Path) -> ServerSettings:
    cert, key = sec.existing_file("tls_cert", base), sec.existing_file("tls_key", base)
    if (cert is None) != (key is None):
        raise sec.error("tls_key" if key is None else "tls_cert",
                        "tls_cert and tls_key must be set together")
    if cert is not None and key is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as e:
            raise sec.error("tls_cert", f"cannot load the certificate and key: {e}") from None
    users = sec.existing_file("auth_users_file", base)
    if users is not None and cert is None:
        raise sec.error("auth_users_file", "AUTH is only offered over TLS: set tls_cert and tls_key")
    settings = ServerSettings(
        listen=parse_listen(sec, "listen", "127.0.0.1:10025"),
        hostname=sec.string("hostname", socket.getfqdn()) or socket.getfqdn(),
        max_message_size=sec.size("max_message_size", "35MiB"),
        max_recipients=sec.integer("max_recipients", 1000, minimum=1),
        tls_cert=cert,
        tls_key=key,
        auth_users_file=users,
        auth_max_failures=sec.integer("auth_max_failures", 5, minimum=1),
        auth_window=sec.number("auth_window", 900, minimum=1),
        proxy_protocol=sec.boolean("proxy_protocol", False),
        proxy_from=_networks(sec, "proxy_from", ["127.0.0.0/8", "::1/128"]),
        workers=sec.integer("workers", 1, minimum=1),
        max_connections=sec.integer("max_connections", 500, minimum=1),
        idle_timeout=sec.number("idle_timeout", 300, minimum=1),
        data_timeout=sec.number("data_timeout", 600, minimum=1),
        shutdown_timeout=sec.number("shutdown_timeout", 30, minimum=0),
        max_line_length=sec.size("max_line_length", "10000"),
        max_header_size=sec.size("max_header_size", "256KiB"),
        unparseable=sec.choice("unparseable", "quarantine", ("quarantine", "tempfail")),
        stamp_secret_file=sec.path("stamp_secret_file", base) or data_dir / "stamp.key",
    )
    if settings.max_line_length < 1000:
        raise sec.error("max_line_length", "must be at least 1000 (RFC 5322 allows 998 + CRLF)")
    return settings


# Upstreams that are cloud services: the return hop to them is always over verified TLS.
CLOUD_UPSTREAMS = (("mail.protection.outlook.com", "Microsoft 365"),
                   ("smtp.office365.com", "Microsoft 365"),
                   ("smtp-relay.gmail.com", "Google Workspace"),
                   ("smtp.gmail.com", "Google Workspace"), ("aspmx.l.google.com", "Google"))


def _upstream(sec: Section, base: Path) -> UpstreamSettings:
    url = sec.string("url", "maildir:var/outbox")
    scheme, _, rest = url.partition(":")
    path: Path | None = None
    host, port = "", 0
    if scheme == "maildir":
        if not rest:
            raise sec.error("url", 'maildir needs a folder, e.g. "maildir:var/outbox"')
        path = Path(rest) if Path(rest).is_absolute() else base / rest
    elif scheme in ("smtp", "smtp+starttls", "smtps"):
        parts = urlsplit(url)
        try:
            host, port = parts.hostname or "", parts.port or (465 if scheme == "smtps" else 25)
        except ValueError:
            raise sec.error("url", f"{url!r} has a bad port") from None
        if not host:
            raise sec.error("url", f'{url!r} has no host; write "smtp://host:port"')
    else:
        raise sec.error("url", 'must start with "maildir:", "smtp://", "smtp+starttls://" or '
                        f'"smtps://"; got {url!r}')
    parts = urlsplit(url) if scheme != "maildir" else None
    username = sec.string("username") or (unquote(parts.username) if parts and parts.username else None)
    password = sec.string("password") or (unquote(parts.password) if parts and parts.password else None)
    if username and scheme == "smtp":
        raise sec.error("username", "refusing to send a password in clear: use smtp+starttls:// or smtps://")
    cloud = next((name for suffix, name in CLOUD_UPSTREAMS if host.lower().rstrip(".")
                  .endswith(suffix)), None)
    if cloud and scheme not in ("smtp+starttls", "smtps"):
        raise sec.error("url", f"{host} is {cloud}, which mailguard reaches only over TLS: "
                        f"use smtp+starttls://{host}:{port}")
    if cloud and not sec.boolean("tls_verify", True):
        raise sec.error("tls_verify", f"{host} is {cloud}: its certificate is always verified")
    cert, key = sec.existing_file("tls_cert", base), sec.existing_file("tls_key", base)
    if (cert is None) != (key is None):
        raise sec.error("tls_key" if key is None else "tls_cert",
                        "tls_cert and tls_key must be set together")
    if cert is not None and scheme not in ("smtp+starttls", "smtps"):
        raise sec.error("tls_cert", "a client certificate is shown only over TLS: use "
                        "smtp+starttls:// or smtps:// in upstream.url")
    if cert is not None and key is not None:
        try:
            ssl.create_default_context().load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as e:
            raise sec.error("tls_cert", f"cannot load the certificate and key: {e}") from None
    return UpstreamSettings(
        url=url, scheme=scheme, host=host, port=port, path=path, username=username,
        password=password, timeout=sec.number("timeout", 60, minimum=1),
        tls_verify=sec.boolean("tls_verify", True), ca_file=sec.existing_file("ca_file", base),
        tls_cert=cert, tls_key=key)


def _organisation(sec: Section) -> OrganisationSettings:
    name = sec.string("name", required=True)
    domains = tuple(parse_domain(sec, "domains", d) for d in sec.strings("domains", []))
    if not domains:
        raise sec.error("domains", "list at least one of the organisation's mail domains")
    postmaster = sec.string("postmaster", f"postmaster@{domains[0]}")
    people = {}
    for key in ("safeguarding_lead", "dpo"):
        people[key] = sec.string(key, "")
        if people[key] and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", people[key]):
            raise sec.error(key, f"{people[key]!r} is not an email address")
    freemail = frozenset(d.lower() for d in sec.strings("freemail_domains", list(FREEMAIL)))
    return OrganisationSettings(name=name, domains=domains, postmaster=postmaster,
                                freemail_domains=freemail, **people)


def _old_keys(sec: Section, base: Path) -> tuple[bytes, ...]:
    """Keys being rotated out: they still open what they sealed, and seal nothing new."""
    from mailguard.store.sealing import parse_key

    return tuple(_private_key(sec, "quarantine_old_key_files",
                              Path(item) if Path(item).is_absolute() else base / item,
                              lambda p: parse_key(p.read_text()))
                 for item in sec.strings("quarantine_old_key_files", []))


def _storage(sec: Section, base: Path) -> StorageSettings:
    data_dir = sec.path("data_dir", base, "var") or base / "var"
    key, source = _quarantine_key(sec, data_dir, base)
    return StorageSettings(
        data_dir=data_dir,
        event_retention_days=sec.integer("event_retention_days", 90, minimum=1),
        quarantine_retention_days=sec.integer("quarantine_retention_days", 30, minimum=1),
        quarantine_key=key, quarantine_key_source=source,
        quarantine_old_keys=_old_keys(sec, base),
    )


def _web(sec: Section) -> WebSettings:
    enabled = sec.string("listen", "127.0.0.1:8025")
    listen = parse_listen(sec, "listen", enabled) if enabled else None
    loopback = listen is not None and listen[0] in ("127.0.0.1", "::1", "localhost")
    url = sec.string("public_url", f"http://{listen[0]}:{listen[1]}" if listen else "")
    if url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise sec.error("public_url", f"must be a URL such as https://mailguard.example.sch.uk, "
                                      f"got {url!r}")
    # Plain HTTP is fine on loopback (a TLS proxy in front, or a test); elsewhere the desk's
    # cookies only travel over HTTPS unless IT says otherwise.
    proxies = tuple(str(n) for n in _networks(sec, "trusted_proxies", []))
    return WebSettings(listen=listen, public_url=url.rstrip("/"),
                       secure_cookies=sec.boolean("secure_cookies", not loopback),
                       session_minutes=sec.integer("session_minutes", 60, minimum=5),
                       trusted_proxies=proxies)


def _dkim(sec: Section, base: Path) -> DkimSettings:
    from mailguard.delivery import dkim  # OpenSSL and dkimpy load only where DKIM is configured

    return dkim.settings_from(sec, base)


def _directory(sec: Section, base: Path) -> Any:
    from mailguard.school import directory

    return directory.settings_from(sec, base)


def _inspection(sec: Section) -> Limits:
    d = Limits()
    return Limits(max_depth=sec.integer("max_depth", d.max_depth, minimum=1),
                  max_members=sec.integer("max_members", d.max_members, minimum=1),
                  max_expanded=sec.size("max_expanded", f"{d.max_expanded}"),
                  max_ratio=sec.integer("max_ratio", d.max_ratio, minimum=2),
                  max_text=sec.size("max_text", f"{d.max_text}"),
                  max_rows=sec.integer("max_rows", d.max_rows, minimum=10),
                  time_limit=sec.number("time_limit", d.time_limit, minimum=0.1))


def _checks(sec: Section, shared: Shared, clauses: dict[str, str]) -> dict[str, Any]:
    """Every check's settings; a check's `clause` (the school's own policy reference, as a
    preset sets it) goes into `clauses` and replaces the clause its findings cite."""
    from mailguard.checks import REGISTRY

    result: dict[str, Any] = {}
    for name in sec.table:
        if name not in REGISTRY:
            raise sec.error(name, f"unknown check; known checks: {', '.join(sorted(REGISTRY))}")
    for name, module in REGISTRY.items():
        table = sec.table_of(name)
        clause = table.string("clause", "")
        if clause:
            clauses[name] = clause
        result[name] = shared.checks[name] = module.settings_from(table, shared)
        if getattr(result[name], "action", None) is Action.NOTIFY and \
                not shared.organisation.safeguarding_lead:
            raise table.error("action", "notify tells the safeguarding lead: set "
                              "[organisation] safeguarding_lead to their address")
        table.done()
    return result


PRESETS = Path(__file__).resolve().parent.parent / "config" / "presets"
PRESET_ENV = "MAILGUARD_PRESET"   # set by `--preset`, so workers and reloads see it too


def with_preset(raw: dict[str, Any], name: Any, file: str) -> dict[str, Any]:
    """The config on top of a trust's preset (config/presets/NAME.toml): every key the local
    file sets wins; the preset fills in the rest."""
    known = sorted(p.stem for p in PRESETS.glob("*.toml"))
    if not isinstance(name, str) or name not in known:
        raise ConfigError(f"{file}: preset: unknown preset {name!r}; presets: {', '.join(known)}")
    preset_file = PRESETS / f"{name}.toml"
    try:
        merged = tomllib.loads(preset_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{preset_file}: cannot read: {e}") from None

    overridden: list[str] = []

    def merge(base: dict[str, Any], extra: dict[str, Any], where: str) -> dict[str, Any]:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value, f"{where}{key}.")
            else:
                if key in base:
                    overridden.append(f"{where}{key}")
                base[key] = value
        return base
    merge(merged, {k: v for k, v in raw.items() if k != "preset"}, "")
    merged["preset"] = {"name": name, "overridden": overridden}
    return merged


def load(path: str | Path, *, checks: bool = True) -> Settings:
    """Read and validate a config file; raises ConfigError with `file: key: problem`.

    `checks=False` skips the checks (wordlists, templates) and DKIM keys, for commands that
    only read the stores: a wordlist IT is halfway through editing must not lock the DPO
    out of the quarantine.
    """
    path = Path(path)
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: cannot read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML: {e}") from None
    # Relative paths are relative to the project root when the config sits in config/,
    # otherwise to the config file's folder, so `make run` and /etc installs both work.
    base = path.resolve().parent
    if base.name == "config":
        base = base.parent
    preset = os.environ.get(PRESET_ENV) or raw.get("preset", "")
    overridden: list[str] = []
    if preset:
        raw = with_preset(raw, preset, file)
        overridden = raw.pop("preset")["overridden"]
    top = Section(file, "", raw)
    top.seen.add("preset")

    def part(name: str, build: Callable[[Section], T]) -> T:
        sec = top.table_of(name)
        sec.name = name
        value = build(sec)
        sec.done()
        return value

    clauses: dict[str, str] = {}
    storage = part("storage", lambda s: _storage(s, base))
    org = part("organisation", _organisation)
    directory = part("directory", lambda s: _directory(s, base))
    shared = Shared(org, directory, base, part("inspection", _inspection), storage.data_dir)
    server_sec = top.table_of("server")
    server_sec.name = "server"
    server = _server(server_sec, base, storage.data_dir)
    relay_sources = sources.settings_from(top, server_sec, base, storage.data_dir,
                                          server.tls_cert is not None,
                                          server.auth_users_file is not None)
    server_sec.done()
    upstream = part("upstream", lambda s: _upstream(s, base))
    local = {server.listen[0], "127.0.0.1", "localhost", "::1"} if server.listen[0] in (
        "0.0.0.0", "::", "127.0.0.1", "localhost", "::1") else {server.listen[0]}
    if upstream.scheme != "maildir" and upstream.port == server.listen[1] and \
            upstream.host.lower() in local:
        raise ConfigError(f"{file}: upstream.url: {upstream.host}:{upstream.port} is mailguard's "
                          "own server.listen: it would relay to itself. Point it at the server "
                          "that delivers onward")
    settings = Settings(
        file=file,
        server=server,
        sources=relay_sources,
        upstream=upstream,
        organisation=org,
        storage=storage,
        web=part("web", _web),
        checks=part("checks", lambda s: _checks(s, shared, clauses)) if checks else {},
        clauses=clauses, preset=str(preset), preset_overridden=tuple(overridden),
        directory=directory,
        dkim=part("dkim", lambda s: _dkim(s, base)) if checks else DkimSettings({}, ""),
        inspection=shared.inspection,
        notices=part("notices", _notices),
    )
    if not checks:
        top.seen.update(("checks", "dkim"))
    unknown = sorted(set(raw) - top.seen)
    if unknown:
        raise ConfigError(f"{file}: {unknown[0]}: unknown section (check the spelling)")
    return settings
