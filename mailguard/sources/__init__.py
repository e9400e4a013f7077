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
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailguard.sources import proof
from mailguard.sources.ranges import Network, Ranges, RangesError
from mailguard.sources.ranges import load as load_ranges

if TYPE_CHECKING:
    from mailguard.config import Section

KINDS = ("network", "microsoft365", "google", "certificate", "auth")
CLOUD = {"microsoft365": "Microsoft 365", "google": "Google Workspace"}
# Certificates every tenant's connections present: naming one proves nothing about the tenant.
SHARED_SUBJECTS = ("outlook.com", "office365.com", "google.com", "gmail.com", "googlemail.com")
SECRET_MIN = 24
_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{1,60}")


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


def _networks(sec: Section, key: str, default: list[str] | None = None) -> tuple[Network, ...]:
    from mailguard.config import _networks as parse  # config imports this module

    return parse(sec, key, default or [])


def _no_shared_range(sec: Section, key: str, nets: tuple[Network, ...],
                     shared: list[tuple[str, Network]]) -> None:
    """Trusting a shared cloud range by address is trusting every tenant of that service."""
    for net in nets:
        for service, other in shared:
            if net.version == other.version and net.overlaps(other):
                raise sec.error(key, (
                    f"{net} overlaps {other}, an outbound range of {service} that every one "
                    f"of its tenants shares: trusting it would let any other tenant relay "
                    f"through mailguard as you. Use a microsoft365 or google source, which "
                    f"checks the mail is your tenant's (see docs/deploy/)"))


def _secret(sec: Section, base: Path) -> str:
    """The shared secret header's value: from a file (not readable by others) or the
    environment; long enough that it cannot be guessed."""
    env, path = sec.string("secret_env", ""), sec.path("secret_file", base)
    if bool(env) == (path is not None):
        raise sec.error("secret_file", "set one of secret_file or secret_env for secret_header")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise sec.error("secret_env", f"the environment variable {env} is not set")
        key = "secret_env"
    else:
        from mailguard.config import _private_key

        assert path is not None
        value = _private_key(sec, "secret_file", path, lambda p: p.read_text(encoding="utf-8"))
        key = "secret_file"
    value = value.strip()
    if len(value) < SECRET_MIN or not value.isascii() or not value.isprintable():
        raise sec.error(key, f"the secret must be at least {SECRET_MIN} printable ASCII "
                             "characters (make one with `openssl rand -hex 24`)")
    return value


def _source(sec: Section, name: str, base: Path, ranges: Ranges) -> Source:
    kind = sec.choice("type", "", KINDS) if "type" in sec.table else None
    if kind is None:
        raise sec.error("type", f"is required: one of {', '.join(KINDS)}")
    common: dict[str, Any] = {"name": name, "kind": kind}
    if kind == "network":
        nets = _networks(sec, "networks")
        if not nets:
            raise sec.error("networks", "list the mail servers' addresses, e.g. "
                                        '["192.0.2.10/32"]')
        _no_shared_range(sec, "networks", nets, ranges.shared())
        return Source(**common, networks=nets)
    if kind in CLOUD:
        service = ranges.services[kind]
        # `ranges` replaces the data file's, e.g. for a test rig: the mail must still prove
        # itself, so widening them trusts no one more.
        nets = _networks(sec, "ranges") or service.ranges
        header = sec.string("secret_header", "")
        if header and not _FIELD_NAME.fullmatch(header):
            raise sec.error("secret_header", f"{header!r} is not a header name such as "
                                             "X-Mailguard-Connector")
        if kind == "google" and not header:
            raise sec.error("secret_header", "is required: Google stamps no tenant id, so the "
                            "routing rule's secret header is the proof (see "
                            "docs/deploy/google-workspace.md)")
        secret = _secret(sec, base) if header else ""
        tenants: frozenset[str] = frozenset()
        if kind == "microsoft365":
            tenants = frozenset(t.strip().lower() for t in sec.strings("tenant_ids", []))
            if not tenants:
                raise sec.error("tenant_ids", "is required: the trust's Microsoft 365 tenant "
                                "id (Entra admin centre → Overview → Tenant ID)")
            for t in tenants:
                if not proof.GUID.fullmatch(t):
                    raise sec.error("tenant_ids", f"{t!r} is not a tenant id such as "
                                    "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b")
        return Source(**common, networks=nets, tenant_ids=tenants, secret_header=header,
                      secret=secret)
    if kind == "certificate":
        prints = frozenset(f.lower().removeprefix("sha256:").replace(":", "")
                           for f in sec.strings("fingerprints", []))
        for f in prints:
            if len(f) != 64 or any(c not in "0123456789abcdef" for c in f):
                raise sec.error("fingerprints", f"{f!r} is not a SHA-256 fingerprint "
                                "(openssl x509 -noout -fingerprint -sha256 -in cert.pem)")
        subjects = frozenset(s.lower() for s in sec.strings("subjects", []))
        for s in subjects:
            if s.endswith(SHARED_SUBJECTS):
                raise sec.error("subjects", f"{s} is a certificate every tenant of a cloud "
                                "service presents; it proves nothing about which tenant")
        if not prints and not subjects:
            raise sec.error("fingerprints", "list fingerprints or subjects (or both)")
        ca = sec.existing_file("ca_file", base)
        if ca is not None:
            try:
                ssl.create_default_context().load_verify_locations(cafile=str(ca))
            except (ssl.SSLError, OSError) as e:
                raise sec.error("ca_file", f"cannot read {ca} as PEM certificates: {e}") from None
        return Source(**common, fingerprints=prints, subjects=subjects, ca_file=ca)
    return Source(**common)


def settings_from(top: Section, server: Section, base: Path, data_dir: Path,
                  has_tls: bool, has_users: bool) -> Sources:
    """The named sources, plus `server.trusted_networks` (deprecated) as a network source."""
    try:
        ranges = load_ranges(data_dir)
    except RangesError as e:
        raise top.error("sources", str(e)) from None
    table = top.table_of("sources")
    table.name = "sources"
    items = []
    for name in table.table:
        sec = table.table_of(name)
        source = _source(sec, name, base, ranges)
        sec.done()
        if (source.cloud or source.kind in ("certificate", "auth")) and not has_tls:
            raise sec.error("type", f"a {source.kind} source needs TLS: set server.tls_cert "
                                    "and server.tls_key")
        if source.kind == "auth" and not has_users:
            raise sec.error("type", "an auth source needs server.auth_users_file")
        items.append(source)
    table.seen.update(table.table)
    explicit = "trusted_networks" in server.table
    if explicit or not items:
        default = [] if items else ["127.0.0.0/8", "::1/128"]
        nets = _networks(server, "trusted_networks", default)
        _no_shared_range(server, "trusted_networks", nets, ranges.shared())
        if nets:
            items.insert(0, Source("trusted_networks", "network", networks=nets,
                                   deprecated=explicit))
    else:
        server.seen.add("trusted_networks")
    if has_users and not any(s.kind == "auth" for s in items):
        if table.table:
            raise server.error("auth_users_file", 'is set, but no source has type = "auth": '
                               "add [sources.staff] type = \"auth\", or remove the file")
        items.append(Source("auth", "auth"))   # today's behaviour: a users file offers AUTH
    return Sources(tuple(items), ranges)
