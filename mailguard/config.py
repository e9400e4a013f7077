"""The config file, read in two phases: `parse` checks it against the schema (pure: nothing is
opened but the file and its preset), `build` makes what runs (compiled wordlists, keys,
templates, certificates). Every problem reads `file: key: problem`, so IT can fix it.
"""

from __future__ import annotations

import os
import socket
import ssl
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError, create_model, model_validator

from mailguard.files.limits import Limits
from mailguard.model import Action
from mailguard.settings.errors import worded
from mailguard.settings.files import private
from mailguard.settings.schema import KeyProblem, Network, Options, parse_listen
from mailguard.settings.sections import (
    DirectoryOptions,
    DkimOptions,
    InspectionOptions,
    MilterOptions,
    NoticesOptions,
    OrganisationOptions,
    ServerOptions,
    StorageOptions,
    UpstreamOptions,
    WebOptions,
)
from mailguard.settings.shared import DkimSettings, OrganisationSettings, Shared
from mailguard.sources.options import KINDS, SourceOptions

T = TypeVar("T")
TAGS = tuple(f"({kind})" for kind in KINDS)   # the relay sources' tables, told apart by type


class ConfigError(Exception):
    """A config problem, worded `file: key: problem`."""


@dataclass(frozen=True)
class ServerSettings:
    listen: tuple[str, int]
    hostname: str
    node: str
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


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path
    event_retention_days: int
    quarantine_retention_days: int
    quarantine_key: bytes = field(default=b"", repr=False)   # AES-256-GCM; never in the store
    quarantine_key_source: str = ""   # where it came from, for check-config
    quarantine_old_keys: tuple[bytes, ...] = field(default=(), repr=False)   # being rotated out
    url: str = "sqlite:"   # "sqlite:" (the data folder) or postgresql://… (the shared store)
    password: str | None = field(default=None, repr=False)   # PostgreSQL's, from env or file

    @property
    def shared(self) -> bool:
        """The store is PostgreSQL, shared with other gateways."""
        return self.url != "sqlite:"


@dataclass(frozen=True)
class WebSettings:
    listen: tuple[str, int] | None
    public_url: str                # how reviewers reach the desk, for links in notices
    secure_cookies: bool           # Secure cookies: the desk is reached over HTTPS
    session_minutes: int           # signed out after this long without a request
    trusted_proxies: tuple[str, ...]   # reverse proxies whose X-Forwarded-For is believed


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
    notices: NoticesOptions = field(default_factory=NoticesOptions)
    milter: MilterOptions = field(default_factory=MilterOptions)   # `mailguard milter`
    sources: Any = None   # mailguard.sources.Sources: who may relay, and how they prove it


class _Checks(Options):
    """`[checks]`: one table per check, each with the options its module declares."""

    @model_validator(mode="before")
    @classmethod
    def _known(cls, value: Any) -> Any:
        for name in value if isinstance(value, dict) else ():
            if name not in cls.model_fields:
                raise KeyProblem(name, "unknown check; known checks: "
                                 + ", ".join(sorted(cls.model_fields)))
        return value


def _checks_model() -> type[Options]:
    from mailguard.checks.registry import REGISTRY

    fields: dict[str, Any] = {name: (module.Options, Field(default_factory=module.Options))
                              for name, module in REGISTRY.items()}
    return create_model("ChecksOptions", __base__=_Checks, **fields)


class Document(Options):
    """The whole config file, validated: what `check-config` checks before anything is built."""

    server: ServerOptions = Field(default_factory=ServerOptions)
    upstream: UpstreamOptions = Field(default_factory=UpstreamOptions)
    organisation: OrganisationOptions
    storage: StorageOptions = Field(default_factory=StorageOptions)
    web: WebOptions = Field(default_factory=WebOptions)
    notices: NoticesOptions = Field(default_factory=NoticesOptions)
    milter: MilterOptions = Field(default_factory=MilterOptions)
    inspection: InspectionOptions = Field(default_factory=InspectionOptions)
    directory: DirectoryOptions = Field(default_factory=DirectoryOptions)
    dkim: DkimOptions = Field(default_factory=DkimOptions)
    sources: dict[str, SourceOptions] = Field(default_factory=dict)
    checks: Any = None   # ChecksOptions, made from the registry when first asked for


class StoresOnly(Document):
    """The file as the commands that only read the stores take it: the checks' tables and
    the DKIM keys are not read, so a wordlist IT is halfway through editing does not lock
    the DPO out of the quarantine (and the checks are not even imported)."""

    checks: dict[str, Any] = Field(default_factory=dict)
    dkim: dict[str, Any] = Field(default_factory=dict)   # type: ignore[assignment]


_DOCUMENT: list[type[Document]] = []


def document_model() -> type[Document]:
    """Document with `checks` typed by the registry (built once: the checks import late)."""
    if not _DOCUMENT:
        checks = _checks_model()
        _DOCUMENT.append(create_model("Config", __base__=Document,
                                      checks=(checks, Field(default_factory=checks))))
    return _DOCUMENT[0]


@dataclass(frozen=True)
class Parsed:
    """A config file that passed the schema, with where it came from."""

    file: str
    base: Path   # relative paths are relative to this folder
    document: Document
    preset: str = ""
    overridden: tuple[str, ...] = ()


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


SECTIONS = ("server", "upstream", "organisation", "storage", "web", "notices", "milter",
            "inspection", "directory", "dkim", "sources", "checks")


def parse(path: str | Path, *, checks: bool = True) -> Parsed:
    """Read a config file and check it against the schema. Pure: it opens nothing but the
    file (and its preset), writes nothing, and builds nothing. `checks=False` leaves the
    checks' tables and DKIM unread (StoresOnly)."""
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
    raw.pop("preset", None)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{file}: {unknown[0]}: unknown section (check the spelling)")
    raw.setdefault("organisation", {})
    try:
        document = (document_model() if checks else StoresOnly).model_validate(raw)
    except ValidationError as e:
        raise ConfigError(worded(file, e, TAGS)) from None
    return Parsed(file, base, document, str(preset), tuple(overridden))


def _path(base: Path, value: str | None) -> Path | None:
    if not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else base / p


def _existing(base: Path, value: str | None, key: str) -> Path | None:
    p = _path(base, value)
    if p is not None and not p.is_file():
        raise KeyProblem(key, f"file {p} does not exist")
    return p


def _certificate(cert: Path | None, key: Path | None, purpose: ssl.Purpose) -> None:
    """A certificate and its key, set together and loadable (checked once the files are
    known to exist, so the message says what is wrong first)."""
    if (cert is None) != (key is None):
        raise KeyProblem("tls_key" if key is None else "tls_cert",
                         "tls_cert and tls_key must be set together")
    if cert is not None and key is not None:
        try:
            ssl.create_default_context(purpose).load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as e:
            raise KeyProblem("tls_cert", f"cannot load the certificate and key: {e}") from None


def _server(o: ServerOptions, base: Path, data_dir: Path) -> ServerSettings:
    cert, key = _existing(base, o.tls_cert, "tls_cert"), _existing(base, o.tls_key, "tls_key")
    _certificate(cert, key, ssl.Purpose.CLIENT_AUTH)
    users = _existing(base, o.auth_users_file, "auth_users_file")
    if users is not None and cert is None:
        raise KeyProblem("auth_users_file", "AUTH is only offered over TLS: set tls_cert and "
                         "tls_key")
    return ServerSettings(
        listen=o.listen, hostname=o.hostname or socket.getfqdn(),
        node=o.node or socket.gethostname(),
        max_message_size=o.max_message_size, max_recipients=o.max_recipients, tls_cert=cert,
        tls_key=key, auth_users_file=users,
        auth_max_failures=o.auth_max_failures, auth_window=o.auth_window,
        proxy_protocol=o.proxy_protocol, proxy_from=o.proxy_from, workers=o.workers,
        max_connections=o.max_connections, idle_timeout=o.idle_timeout,
        data_timeout=o.data_timeout, shutdown_timeout=o.shutdown_timeout,
        max_line_length=o.max_line_length, max_header_size=o.max_header_size,
        unparseable=o.unparseable,
        stamp_secret_file=_path(base, o.stamp_secret_file) or data_dir / "stamp.key")


def _upstream(o: UpstreamOptions, base: Path) -> UpstreamSettings:
    host, port = o.address
    rest = o.url.partition(":")[2]
    folder = _path(base, rest) if o.scheme == "maildir" else None
    cert, key = _existing(base, o.tls_cert, "tls_cert"), _existing(base, o.tls_key, "tls_key")
    if (cert is None) == (key is None) and cert is not None and o.scheme not in (
            "smtp+starttls", "smtps"):
        raise KeyProblem("tls_cert", "a client certificate is shown only over TLS: use "
                         "smtp+starttls:// or smtps:// in upstream.url")
    _certificate(cert, key, ssl.Purpose.SERVER_AUTH)
    username, password = o.login
    return UpstreamSettings(
        url=o.url, scheme=o.scheme, host=host, port=port, path=folder, username=username,
        password=password, timeout=o.timeout, tls_verify=o.tls_verify,
        ca_file=_existing(base, o.ca_file, "ca_file"), tls_cert=cert, tls_key=key)


def _organisation(o: OrganisationOptions) -> OrganisationSettings:
    return OrganisationSettings(
        name=o.name, domains=o.domains, postmaster=o.postmaster or f"postmaster@{o.domains[0]}",
        safeguarding_lead=o.safeguarding_lead, dpo=o.dpo,
        freemail_domains=frozenset(d.lower() for d in o.freemail_domains))


def _quarantine_key(o: StorageOptions, data_dir: Path, base: Path, create: bool
                    ) -> tuple[bytes, str]:
    """The key held mail is sealed with: from the named environment variable, or from the
    key file (made on first start, 0600; by default in the data folder)."""
    from mailguard.store.sealing import key_file, parse_key

    if o.quarantine_key_env:
        env = o.quarantine_key_env
        value = os.environ.get(env)
        if value is None:
            raise KeyProblem("quarantine_key_env", f"the environment variable {env} is not set")
        try:
            return parse_key(value), f"environment variable {env}"
        except ValueError as e:
            raise KeyProblem("quarantine_key_env", f"{env} {e}") from None
    path = _path(base, o.quarantine_key_file) or data_dir / "quarantine.key"
    if not create and not path.exists():
        return b"", f"file {path} (made when mailguard first starts)"
    return (private("quarantine_key_file", path, key_file, "read or make"), f"file {path}")


def _storage(o: StorageOptions, base: Path, create: bool) -> StorageSettings:
    from mailguard.store.sealing import parse_key

    data_dir = _path(base, o.data_dir) or base / "var"
    key, source = _quarantine_key(o, data_dir, base, create)
    old = tuple(private("quarantine_old_key_files", _path(base, item) or Path(item),
                        lambda p: parse_key(p.read_text()))
                for item in o.quarantine_old_key_files)
    return StorageSettings(
        data_dir=data_dir, event_retention_days=o.event_retention_days,
        quarantine_retention_days=o.quarantine_retention_days, quarantine_key=key,
        quarantine_key_source=source, quarantine_old_keys=old, url=o.url,
        password=_store_password(o, base))


def _store_password(o: StorageOptions, base: Path) -> str | None:
    """PostgreSQL's password, from the named environment variable or the file's first line."""
    if o.password_env:
        value = os.environ.get(o.password_env)
        if value is None:
            raise KeyProblem("password_env", f"the environment variable {o.password_env} is "
                             "not set")
        return value
    if o.password_file:
        path = _path(base, o.password_file) or Path(o.password_file)
        return private("password_file", path, lambda p: p.read_text().split("\n", 1)[0].strip(),
                       "read")
    return None


def _web(o: WebOptions) -> WebSettings:
    listen = parse_listen(o.listen) if o.listen else None
    loopback = listen is not None and listen[0] in ("127.0.0.1", "::1", "localhost")
    url = o.public_url if o.public_url is not None else (
        f"http://{listen[0]}:{listen[1]}" if listen else "")
    # Plain HTTP is fine on loopback (a TLS proxy in front, or a test); elsewhere the desk's
    # cookies only travel over HTTPS unless IT says otherwise.
    return WebSettings(listen=listen, public_url=url.rstrip("/"),
                       secure_cookies=o.secure_cookies if o.secure_cookies is not None
                       else not loopback, session_minutes=o.session_minutes,
                       trusted_proxies=tuple(str(n) for n in o.trusted_proxies))


def _checks(checks: Any, shared: Shared, clauses: dict[str, str]) -> dict[str, Any]:
    """Every check's settings, built in registry order; a check's `clause` (the school's own
    policy reference, as a preset sets it) replaces the clause its findings cite."""
    from mailguard.checks.registry import REGISTRY

    result: dict[str, Any] = {}
    for name, module in REGISTRY.items():
        options = getattr(checks, name)
        if options.clause:
            clauses[name] = options.clause
        try:
            result[name] = shared.checks[name] = module.build(options, shared)
        except KeyProblem as e:
            raise e.under(f"checks.{name}") from None
        if getattr(result[name], "action", None) is Action.NOTIFY and \
                not shared.organisation.safeguarding_lead:
            raise KeyProblem(f"checks.{name}.action", "notify tells the safeguarding lead: set "
                             "[organisation] safeguarding_lead to their address")
    return result


def _dkim(o: DkimOptions, base: Path) -> DkimSettings:
    if not o.domains:   # OpenSSL and dkimpy load only where DKIM is configured
        return DkimSettings({}, o.canonicalization)
    from mailguard.delivery import dkim

    return dkim.build(o, base)


def _part(table: str, make: Callable[[], T]) -> T:
    try:
        return make()
    except KeyProblem as e:
        raise e.under(table) if table else e from None


def build(parsed: Parsed, *, checks: bool = True, create: bool = True) -> Settings:
    """What runs, from a parsed config: the directory read, the checks' lists compiled,
    certificates and keys loaded. `create=False` (check-config) makes nothing on disk: a
    quarantine key not there yet is reported, not made."""
    from mailguard import sources
    from mailguard.school import directory

    d, base = parsed.document, parsed.base
    try:
        storage = _part("storage", lambda: _storage(d.storage, base, create))
        organisation = _organisation(d.organisation)
        people = _part("directory", lambda: directory.build(d.directory, base))
        limits = d.inspection.limits()
        shared = Shared(organisation, people, base, limits, storage.data_dir, storage=storage)
        server = _part("server", lambda: _server(d.server, base, storage.data_dir))
        relay_sources = _part("", lambda: sources.build(d.sources, d.server, base,
                                                        storage.data_dir))
        upstream = _part("upstream", lambda: _upstream(d.upstream, base))
        local = {server.listen[0], "127.0.0.1", "localhost", "::1"} if server.listen[0] in (
            "0.0.0.0", "::", "127.0.0.1", "localhost", "::1") else {server.listen[0]}
        if upstream.scheme != "maildir" and upstream.port == server.listen[1] and \
                upstream.host.lower() in local:
            raise KeyProblem("upstream.url", f"{upstream.host}:{upstream.port} is mailguard's "
                             "own server.listen: it would relay to itself. Point it at the "
                             "server that delivers onward")
        clauses: dict[str, str] = {}
        return Settings(
            file=parsed.file, server=server, sources=relay_sources, upstream=upstream,
            organisation=organisation, storage=storage, web=_web(d.web),
            checks=_checks(d.checks, shared, clauses) if checks else {},
            clauses=clauses, preset=parsed.preset, preset_overridden=parsed.overridden,
            directory=people,
            dkim=_part("dkim", lambda: _dkim(d.dkim, base)) if checks
            else DkimSettings({}, ""),
            inspection=limits, notices=d.notices, milter=d.milter)
    except KeyProblem as e:
        raise ConfigError(f"{parsed.file}: {e.key}: {e.problem}") from None


def load(path: str | Path, *, checks: bool = True, create: bool = True) -> Settings:
    """Parse and build; raises ConfigError with `file: key: problem`.

    `checks=False` skips the checks (wordlists, templates) and DKIM keys, for commands that
    only read the stores: a wordlist IT is halfway through editing must not lock the DPO
    out of the quarantine.
    """
    return build(parse(path, checks=checks), checks=checks, create=create)
