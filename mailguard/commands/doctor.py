"""`mailguard doctor`: the config against the deployment it is for. Who may relay and how they
prove it, TLS, whether the upstream answers, and the DNS records (DKIM, SPF) that mail from
mailguard needs. Each line says ok, note or fix, and what to do; exit 1 when any says fix.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import UTC, date, datetime
from typing import Any

from mailguard.config import Settings
from mailguard.server import certificates

Finding = tuple[str, str]   # ("ok" | "note" | "fix", what)
M365_UPSTREAM = "mail.protection.outlook.com"
GOOGLE_UPSTREAMS = ("smtp-relay.gmail.com", "aspmx.l.google.com")
RANGES_STALE_DAYS = 180


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    resolver = _resolver(args.dns)
    findings = (sources(settings) + tls(settings) + asyncio.run(upstream(settings))
                + asyncio.run(store(settings)) + dns_records(settings, resolver))
    width = max(len(level) for level, _ in findings)
    for level, text in findings:
        print(f"{level.ljust(width)}  {text}")
    fixes = sum(level == "fix" for level, _ in findings)
    print(f"\n{fixes} to fix" if fixes else "\nnothing to fix")
    return 1 if fixes else 0


def sources(settings: Settings, today: date | None = None) -> list[Finding]:
    out: list[Finding] = []
    org = settings.organisation.name
    kinds = {s.kind for s in settings.sources.items}
    host = settings.upstream.host.lower()
    for s in settings.sources.items:
        if s.deprecated:
            out.append(("fix", f"server.trusted_networks is deprecated: write [sources.{s.name}] "
                               f'type = "network", networks = [...] instead'))
        if s.kind == "network" and all(n.is_loopback for n in s.networks):
            out.append(("note", f"sources.{s.name}: only this machine may relay by address"))
        if s.kind == "microsoft365" and not s.secret_header:
            out.append(("note", f"sources.{s.name}: only the tenant stamp binds mail to {org}; "
                                "a transport rule's secret header adds proof no other tenant "
                                "can give (docs/deploy/microsoft-365.md, step 3)"))
        if s.cloud or s.kind in ("network", "certificate", "auth"):
            out.append(("ok", s.explain(org)))
    if "microsoft365" in kinds and not host.endswith(M365_UPSTREAM):
        out.append(("note", "mail from Microsoft 365 usually goes back through the tenant's "
                            "inbound connector: upstream.url = smtp+starttls://<your domain "
                            f"with dashes>.{M365_UPSTREAM}:25"))
    if host.endswith(M365_UPSTREAM) and settings.upstream.tls_cert is None:
        out.append(("fix", "upstream.tls_cert: Microsoft 365's inbound connector for the return "
                           "hop knows mailguard by its certificate's domain: set "
                           "upstream.tls_cert and upstream.tls_key"))
    if "google" in kinds and host.endswith(GOOGLE_UPSTREAMS):
        out.append(("fix", f"upstream.url: mail from Google Workspace sent back to {host} meets "
                           "the routing rule again and returns to mailguard: send it on through "
                           "a relay that delivers to the internet (docs/deploy/google-workspace.md)"))
    ranges = settings.sources.ranges
    age = ((today or datetime.now(UTC).date()) - ranges.date).days
    if kinds & {"microsoft365", "google"} and age > RANGES_STALE_DAYS:
        out.append(("fix", f"the shared ranges ({ranges.file}) are {age} days old: download the "
                           "current ones and run `mailguard sources update FILE`"))
    return out


def tls(settings: Settings) -> list[Finding]:
    s = settings.server
    out: list[Finding] = [("fix", w) for w in certificates.warnings(settings)]
    if s.tls_cert is None:
        out.append(("note", "server.tls_cert is not set: clients cannot use STARTTLS, so only "
                            "network sources work"))
        return out
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(s.tls_cert.read_bytes())
    except (OSError, ValueError):
        return out   # certificates.warnings has said why
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [n.lower() for n in ext.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not any(_covers(n, s.hostname.lower()) for n in names):
        listed = ", ".join(names) or "no DNS name"
        out.append(("fix", f"server.tls_cert: {s.tls_cert} is for {listed}, not server.hostname "
                           f"{s.hostname}; Microsoft 365's outbound connector checks the "
                           "smarthost's certificate name"))
    else:
        out.append(("ok", f"server.tls_cert covers {s.hostname}"))
    return out


def _covers(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.count(".") == pattern.count(".") and host.endswith(pattern[1:])
    return pattern == host


async def upstream(settings: Settings) -> list[Finding]:
    u = settings.upstream
    if u.scheme == "maildir":
        assert u.path is not None
        ok = os.access(u.path if u.path.exists() else u.path.parent, os.W_OK)
        return [("ok" if ok else "fix", f"upstream {u.url}: the folder is "
                 + ("writable" if ok else "not writable by this user"))]
    from mailguard.delivery.relay import SmtpUpstream

    conn = None
    try:
        conn = await asyncio.wait_for(SmtpUpstream(u, settings.server.hostname)._connect(),
                                      timeout=min(u.timeout, 15))
        banner = f"{conn.last_ehlo_response.code if conn.last_ehlo_response else ''}".strip()
        tls_note = " over verified TLS" if u.scheme != "smtp" and u.tls_verify else ""
        return [("ok", f"upstream {u.scheme}://{u.host}:{u.port} answers{tls_note} "
                       f"(EHLO {banner or 'done'})")]
    except Exception as e:   # whatever stops the connection is the finding
        return [("fix", f"upstream {u.scheme}://{u.host}:{u.port}: cannot reach it "
                        f"({type(e).__name__}: {e}); check upstream.url, the firewall, and "
                        "that the server accepts mailguard's address")]
    finally:
        if conn is not None:
            conn.close()


async def store(settings: Settings) -> list[Finding]:
    """The shared store: reachable, its schema up to date, the same quarantine key as the
    other nodes, and the connection encrypted when it leaves the machine. Read only."""
    storage = settings.storage
    if not storage.shared:
        return [("ok", f"store: SQLite in {storage.data_dir} (one machine)")]
    from urllib.parse import parse_qs, urlsplit

    import psycopg

    from mailguard.store import migrate
    from mailguard.store.opening import fingerprint
    from mailguard.store.postgres import _PgQueries, _rows, problem

    url = urlsplit(storage.url)
    where = f"PostgreSQL {url.path.strip('/')} on {url.hostname}:{url.port or 5432}"
    out: list[Finding] = []
    loopback = url.hostname in ("127.0.0.1", "::1", "localhost")
    if not loopback and parse_qs(url.query).get("sslmode", [""])[0] not in (
            "verify-full", "verify-ca"):
        out.append(("fix", f"store: the connection to {where} is not verified TLS: held mail "
                           "crosses the network. Add ?sslmode=verify-full (and sslrootcert) to "
                           "[storage] url"))
    try:   # one connection, tried once (a pool would go on trying)
        conn = await psycopg.AsyncConnection.connect(
            storage.url, password=storage.password, connect_timeout=10, row_factory=_rows)
    except Exception as e:   # whatever stops the connection is the finding
        return [*out, ("fix", f"store: {problem(e) or e}")]
    pg = _PgQueries(conn)
    try:
        applied, pending = await migrate.status(pg)  # type: ignore[arg-type]
        out.append(("ok" if not pending else "note", f"store: {where} answers; schema "
                    + ("up to date" if not pending else
                       f"{len(pending)} migration(s) to apply (a start applies them, or "
                       "`mailguard store migrate`)")))
        row = (await pg.one("SELECT value FROM cluster WHERE name = 'quarantine_key'")
               if applied else None)
        if row and storage.quarantine_key and row[0] != fingerprint(storage.quarantine_key):
            out.append(("fix", "store: this node's quarantine key is not the one the other "
                               "nodes seal with: give it the same quarantine_key_file"))
    finally:
        await conn.close()
    return out


def _resolver(where: str | None) -> Any:
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=where is None)
    if where:
        host, sep, port = where.rpartition(":")
        if not sep:
            host, port = where, "53"
        resolver.nameservers = [host]
        resolver.port = int(port)
    resolver.lifetime = 4.0
    return resolver


def _txt(resolver: Any, name: str) -> list[str] | str:
    """The TXT strings at `name`, or why they could not be read."""
    import dns.exception
    import dns.resolver

    try:
        answer = resolver.resolve(name, "TXT")
    except dns.resolver.NXDOMAIN:
        return NO_DOMAIN
    except dns.resolver.NoAnswer:
        return []
    except (dns.exception.DNSException, OSError) as e:
        return f"could not look it up ({type(e).__name__})"
    return [b"".join(r.strings).decode("ascii", "replace") for r in answer]


NO_DOMAIN = "the name does not exist in DNS (NXDOMAIN)"


def _failed(found: list[str] | str) -> str:
    """ "fix" when DNS said the name does not exist; "note" when DNS could not be asked."""
    return "fix" if found == NO_DOMAIN else "note"


def _normal(value: str) -> str:
    return "".join(value.split()).rstrip(";").lower()


def dns_records(settings: Settings, resolver: Any) -> list[Finding]:
    from mailguard.delivery import dkim  # OpenSSL and dkimpy: only for the DKIM keys' records

    out: list[Finding] = []
    for domain, key in settings.dkim.keys.items():
        name = f"{key.selector}._domainkey.{domain}"
        want = dkim.public_value(key)
        found = _txt(resolver, name)
        if isinstance(found, str):
            out.append((_failed(found), f"DKIM {name}: {found}; publish: "
                                f"{dkim.txt_record(key.selector, domain, want)}"))
        elif any(_normal(f) == _normal(want) for f in found):
            out.append(("ok", f"DKIM {name} publishes mailguard's signing key"))
        else:
            out.append(("fix", f"DKIM {name}: " + ("no record" if not found else
                               "the record is not this key") + f"; publish: "
                               f"{dkim.txt_record(key.selector, domain, want)}"))
    host = settings.upstream.host.lower()
    include = ("include:spf.protection.outlook.com" if host.endswith(M365_UPSTREAM)
               else "include:_spf.google.com" if host.endswith(GOOGLE_UPSTREAMS) else "")
    for domain in settings.organisation.domains:
        found = _txt(resolver, domain)
        if isinstance(found, str):
            out.append((_failed(found), f"SPF {domain}: {found}"
                        + (f"; it must contain {include}" if include else "")))
            continue
        spf = [f for f in found if f.lower().startswith("v=spf1")]
        if len(spf) != 1:
            out.append(("fix", f"SPF {domain}: {len(spf)} SPF records; publish exactly one"
                        + (f", with {include}" if include else "")))
        elif include and include not in spf[0].lower().split():
            out.append(("fix", f"SPF {domain}: \"{spf[0]}\" lacks {include}, yet mail leaves "
                               f"through {settings.upstream.host}"))
        elif include:
            out.append(("ok", f"SPF {domain} includes {include}"))
        else:
            out.append(("note", f"SPF {domain}: \"{spf[0]}\" must cover the address of "
                                f"{settings.upstream.host or 'the server that sends on'}"))
    return out


def add_parser(command: Any) -> None:
    d = command("doctor", "check the config against the deployment, and say what to fix")
    d.add_argument("--dns", metavar="HOST[:PORT]",
                   help="the DNS server to ask (default: the system's resolvers)")
