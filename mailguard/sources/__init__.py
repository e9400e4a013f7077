"""Who may relay through mailguard: named sources, each saying how a connection proves that it
is the school's own. `[sources.NAME] type = …` in the config; `server.trusted_networks`
still works as a `network` source, with a deprecation note from check-config.

- network:      on-premises Exchange or Postfix, by address.
- microsoft365: Exchange Online's shared ranges, for mail stamped with our tenant id.
- google:       Google's shared ranges, over TLS, with the routing rule's secret header.
- certificate:  a client TLS certificate whose subject or SHA-256 fingerprint is listed.
- auth:         SMTP AUTH users (server.auth_users_file), throttled and audited.

A connection is admitted at MAIL by the first source it satisfies; a cloud source's proof
is in the message, so it is checked again at the end of DATA (`proof`).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailguard.settings.files import private
from mailguard.settings.schema import KeyProblem
from mailguard.sources import proof
from mailguard.sources.options import (
    KINDS,
    CertificateSource,
    CloudSource,
    Microsoft365Source,
    NetworkSource,
    SourceOptions,
)
from mailguard.sources.ranges import Network, Ranges, RangesError
from mailguard.sources.ranges import load as load_ranges

CLOUD = {"microsoft365": "Microsoft 365", "google": "Google Workspace"}
SECRET_MIN = 24


@dataclass(frozen=True)
class Source:
    """One way a connection proves it is the school's."""

    name: str
    kind: str
    networks: tuple[Network, ...] = ()       # network: its addresses; cloud: the service's
    tenant_ids: frozenset[str] = frozenset()  # microsoft365
    secret_header: str = ""
    secret: str = field(default="", repr=False)
    fingerprints: frozenset[str] = frozenset()   # certificate: SHA-256, lower hex
    subjects: frozenset[str] = frozenset()       # certificate: DNS names or common names
    ca_file: Path | None = None
    deprecated: bool = False

    @property
    def cloud(self) -> bool:
        return self.kind in CLOUD

    def explain(self, org: str) -> str:
        """One sentence for check-config: how this source proves a connection is ours."""
        nets = ", ".join(str(n) for n in self.networks[:4]) + (
            f" and {len(self.networks) - 4} more" if len(self.networks) > 4 else "")
        secret = (f", carrying the {self.secret_header} header that only {org}'s own "
                  "rule adds" if self.secret_header else "")
        if self.kind == "network":
            note = (" (from server.trusted_networks, which is deprecated: write a [sources.NAME] "
                    'table with type = "network" instead)') if self.deprecated else ""
            return f"{self.name} (network): connections from {nets} relay by address{note}."
        if self.kind == "microsoft365":
            return (f"{self.name} (microsoft365): connections from Exchange Online's ranges "
                    f"({len(self.networks)}) relay over TLS only mail stamped with tenant "
                    f"{' or '.join(sorted(self.tenant_ids))}{secret}; other tenants are refused.")
        if self.kind == "google":
            return (f"{self.name} (google): connections from Google's ranges "
                    f"({len(self.networks)}) relay over TLS only mail{secret}.")
        if self.kind == "certificate":
            which = sorted(self.subjects) + [f"sha256:{f[:16]}…" for f in sorted(self.fingerprints)]
            return (f"{self.name} (certificate): connections that show a TLS client "
                    f"certificate, verified against {self.ca_file or 'the system CAs'}, for "
                    f"{', '.join(which)} relay.")
        return (f"{self.name} (auth): clients that sign in over STARTTLS with a user in "
                "server.auth_users_file relay; failed sign-ins are throttled and audited.")

    def matches_certificate(self, der: bytes | None, cert: dict[str, Any] | None) -> bool:
        if self.kind != "certificate" or not der:
            return False
        if hashlib.sha256(der).hexdigest() in self.fingerprints:
            return True
        return bool(self.subjects & certificate_names(cert or {}))

    def refusal(self, head: bytes, org: str) -> proof.Refusal | None:
        """None when the message's header block proves it is ours (cloud sources only)."""
        claimed = ""
        if self.kind == "microsoft365":
            refused = proof.tenant_refusal(head, self.tenant_ids, org)
            if refused is not None:
                return refused
            claimed = proof.values(head, proof.TENANT_HEADER)[0].lower()
        if self.secret_header:
            return proof.secret_refusal(head, self.secret_header, self.secret,
                                        "m365" if self.kind == "microsoft365" else "google",
                                        org, claimed)
        return None


def certificate_names(cert: dict[str, Any]) -> set[str]:
    """The DNS names and common names a (verified) peer certificate is for, lower case."""
    names = {v.lower() for k, v in cert.get("subjectAltName", ()) if k == "DNS"}
    names |= {v.lower() for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"}
    return names


@dataclass(frozen=True)
class Sources:
    items: tuple[Source, ...]
    ranges: Ranges | None = None

    @functools.cached_property
    def order(self) -> tuple[Source, ...]:
        """Proof before address: sign-in, certificate, network; a cloud range last."""
        return tuple(sorted(self.items, key=lambda s: 9 if s.cloud else KINDS.index(s.kind)))

    @property
    def auth(self) -> bool:
        return any(s.kind == "auth" for s in self.items)

    @property
    def certificate_cas(self) -> tuple[Path | None, ...]:
        """The CAs client certificates are verified against (None: the system's)."""
        return tuple(dict.fromkeys(s.ca_file for s in self.items if s.kind == "certificate"))

    def admit(self, ip: str, authenticated: bool, der: bytes | None = None,
              cert: dict[str, Any] | None = None) -> Source | None:
        """The source this connection satisfies at MAIL: a cloud source only provisionally."""
        addr = _address(ip)
        for s in self.order:
            if s.kind == "auth" and authenticated:
                return s
            if s.kind == "certificate" and s.matches_certificate(der, cert):
                return s
            if (s.kind == "network" or s.cloud) and addr is not None and any(
                    addr in n for n in s.networks):
                return s
        return None


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def _no_shared_range(key: str, nets: tuple[Network, ...],
                     shared: list[tuple[str, Network]]) -> None:
    """Trusting a shared cloud range by address is trusting every tenant of that service."""
    for net in nets:
        for service, other in shared:
            if net.version == other.version and net.overlaps(other):
                raise KeyProblem(key, (
                    f"{net} overlaps {other}, an outbound range of {service} that every one "
                    f"of its tenants shares: trusting it would let any other tenant relay "
                    f"through mailguard as you. Use a microsoft365 or google source, which "
                    f"checks the mail is your tenant's (see docs/deploy/)"))


def _secret(o: CloudSource, base: Path) -> str:
    """The shared secret header's value: from a file (not readable by others) or the
    environment; long enough that it cannot be guessed."""
    if o.secret_env:
        value = os.environ.get(o.secret_env)
        if value is None:
            raise KeyProblem("secret_env", f"the environment variable {o.secret_env} is not set")
        key = "secret_env"
    else:
        assert o.secret_file is not None
        path = Path(o.secret_file) if Path(o.secret_file).is_absolute() else base / o.secret_file
        value = private("secret_file", path, lambda p: p.read_text(encoding="utf-8"))
        key = "secret_file"
    value = value.strip()
    if len(value) < SECRET_MIN or not value.isascii() or not value.isprintable():
        raise KeyProblem(key, f"the secret must be at least {SECRET_MIN} printable ASCII "
                              "characters (make one with `openssl rand -hex 24`)")
    return value


def _source(name: str, o: SourceOptions, base: Path, ranges: Ranges) -> Source:
    if isinstance(o, NetworkSource):
        _no_shared_range("networks", o.networks, ranges.shared())
        return Source(name, "network", networks=o.networks)
    if isinstance(o, CloudSource):
        kind = o.type
        # `ranges` replaces the data file's, e.g. for a test rig: the mail must still prove
        # itself, so widening them trusts no one more.
        nets = o.ranges or ranges.services[kind].ranges
        secret = _secret(o, base) if o.secret_header else ""
        tenants = frozenset(o.tenant_ids) if isinstance(o, Microsoft365Source) else frozenset()
        return Source(name, kind, networks=nets, tenant_ids=tenants,
                      secret_header=o.secret_header, secret=secret)
    if isinstance(o, CertificateSource):
        ca = None
        if o.ca_file is not None:
            ca = Path(o.ca_file) if Path(o.ca_file).is_absolute() else base / o.ca_file
            if not ca.is_file():
                raise KeyProblem("ca_file", f"file {ca} does not exist")
            try:
                ssl.create_default_context().load_verify_locations(cafile=str(ca))
            except (ssl.SSLError, OSError) as e:
                raise KeyProblem("ca_file", f"cannot read {ca} as PEM certificates: {e}"
                                 ) from None
        return Source(name, "certificate", fingerprints=frozenset(o.fingerprints),
                      subjects=frozenset(o.subjects), ca_file=ca)
    return Source(name, "auth")


def build(tables: dict[str, SourceOptions], server: Any, base: Path, data_dir: Path) -> Sources:
    """The named sources, plus `server.trusted_networks` (deprecated) as a network source.
    Problems come back as KeyProblem with the key under `sources.` or `server.`."""
    try:
        ranges = load_ranges(data_dir)
    except RangesError as e:
        raise KeyProblem("sources", str(e)) from None
    has_tls, has_users = server.tls_cert is not None, server.auth_users_file is not None
    items = []
    for name, o in tables.items():
        try:
            source = _source(name, o, base, ranges)
        except KeyProblem as e:
            raise e.under(f"sources.{name}") from None
        if (source.cloud or source.kind in ("certificate", "auth")) and not has_tls:
            raise KeyProblem(f"sources.{name}.type", f"a {source.kind} source needs TLS: set "
                             "server.tls_cert and server.tls_key")
        if source.kind == "auth" and not has_users:
            raise KeyProblem(f"sources.{name}.type", "an auth source needs "
                             "server.auth_users_file")
        items.append(source)
    explicit = server.trusted_networks is not None
    if explicit or not items:
        import ipaddress

        nets = server.trusted_networks if explicit else (() if items else tuple(
            ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128")))
        try:
            _no_shared_range("trusted_networks", nets, ranges.shared())
        except KeyProblem as e:
            raise e.under("server") from None
        if nets:
            items.insert(0, Source("trusted_networks", "network", networks=nets,
                                   deprecated=explicit))
    if has_users and not any(s.kind == "auth" for s in items):
        if tables:
            raise KeyProblem("server.auth_users_file", 'is set, but no source has type = '
                             '"auth": add [sources.staff] type = "auth", or remove the file')
        items.append(Source("auth", "auth"))   # today's behaviour: a users file offers AUTH
    return Sources(tuple(items), ranges)
