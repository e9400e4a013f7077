"""The TLS certificates mailguard shows (to clients, and to the upstream): which have expired
or soon will, said by check-config and logged when the gateway starts."""

from __future__ import annotations

from datetime import UTC, datetime

from mailguard.config import Settings

RENEW_DAYS = 30


def warnings(settings: Settings, now: datetime | None = None) -> list[str]:
    """The TLS certificates that have expired or expire within RENEW_DAYS, in words."""
    from cryptography import x509

    now = now or datetime.now(UTC)
    out = []
    for key, path in (("server.tls_cert", settings.server.tls_cert),
                      ("upstream.tls_cert", settings.upstream.tls_cert)):
        if path is None:
            continue
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as e:
            out.append(f"{settings.file}: {key}: {path} could not be read as a PEM "
                       f"certificate ({e})")
            continue
        ends = cert.not_valid_after_utc
        days = (ends - now).days
        if days < 0:
            out.append(f"{settings.file}: {key}: {path} expired on {ends:%Y-%m-%d}; mail "
                       "servers will refuse it. Renew it, then `systemctl reload mailguard`")
        elif days < RENEW_DAYS:
            out.append(f"{settings.file}: {key}: {path} expires on {ends:%Y-%m-%d}, in {days} "
                       "days. Renew it, then `systemctl reload mailguard`")
    return out
