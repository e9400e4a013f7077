"""`[sources.NAME]`: one table per way a connection proves it is ours, told apart by `type`."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from mailguard.settings.schema import KeyProblem, Networks, Options, Text, Texts

KINDS = ("network", "microsoft365", "google", "certificate", "auth")
# Certificates every tenant's connections present: naming one proves nothing about the tenant.
SHARED_SUBJECTS = ("outlook.com", "office365.com", "google.com", "gmail.com", "googlemail.com")
_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{1,60}")
# A Microsoft 365 tenant id, as Exchange Online stamps it (X-MS-Exchange-CrossTenant-Id).
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class NetworkSource(Options):
    """On-premises Exchange or Postfix, by address."""

    type: Literal["network"]
    networks: Networks = Field((), validate_default=True)
    """The mail servers' addresses or networks."""

    @field_validator("networks")
    @classmethod
    def _some(cls, value: Networks) -> Networks:
        if not value:
            raise ValueError("list the mail servers' addresses, e.g. [\"192.0.2.10/32\"]")
        return value


class CloudSource(Options):
    """Shared cloud ranges, where the mail itself must prove it is the trust's."""

    ranges: Networks = ()
    """Replace the data file's ranges (a test rig): the mail must still prove itself."""
    secret_header: Text = ""
    """The header the trust's own transport or routing rule adds (X-Mailguard-Connector):
    required for `google`, recommended for `microsoft365`. Checked in constant time, removed
    before the message goes on, never logged."""
    secret_file: Text | None = None
    """Its value (24+ characters), in a file others cannot read."""
    secret_env: Text = ""
    """Or in this environment variable."""

    @field_validator("secret_header")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not _FIELD_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a header name such as X-Mailguard-Connector")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> CloudSource:
        if self.secret_header and bool(self.secret_env) == (self.secret_file is not None):
            raise KeyProblem("secret_file", "set one of secret_file or secret_env for "
                             "secret_header")
        return self


class Microsoft365Source(CloudSource):
    """Exchange Online's shared ranges, for mail stamped with our tenant id."""

    type: Literal["microsoft365"]
    tenant_ids: Texts = Field((), validate_default=True)
    """The trust's Microsoft 365 tenant id(s)."""

    @field_validator("tenant_ids")
    @classmethod
    def _tenants(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        tenants = tuple(t.strip().lower() for t in value)
        if not tenants:
            raise ValueError("is required: the trust's Microsoft 365 tenant id (Entra admin "
                             "centre → Overview → Tenant ID)")
        for t in tenants:
            if not GUID.fullmatch(t):
                raise ValueError(f"{t!r} is not a tenant id such as "
                                 "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b")
        return tenants


class GoogleSource(CloudSource):
    """Google's shared ranges, over TLS, with the routing rule's secret header."""

    type: Literal["google"]

    @model_validator(mode="after")
    def _header(self) -> GoogleSource:
        if not self.secret_header:
            raise KeyProblem("secret_header", "is required: Google stamps no tenant id, so the "
                             "routing rule's secret header is the proof (see "
                             "docs/deploy/google-workspace.md)")
        return self


class CertificateSource(Options):
    """A client TLS certificate whose subject or SHA-256 fingerprint is listed."""

    type: Literal["certificate"]
    fingerprints: Texts = ()
    """SHA-256 fingerprints (openssl x509 -noout -fingerprint -sha256)."""
    subjects: Texts = ()
    """DNS names or common names the certificate is for."""
    ca_file: Text | None = None
    """The CA it must chain to (default: the system's)."""

    @field_validator("fingerprints")
    @classmethod
    def _prints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        prints = tuple(f.lower().removeprefix("sha256:").replace(":", "") for f in value)
        for f in prints:
            if len(f) != 64 or any(c not in "0123456789abcdef" for c in f):
                raise ValueError(f"{f!r} is not a SHA-256 fingerprint "
                                 "(openssl x509 -noout -fingerprint -sha256 -in cert.pem)")
        return prints

    @field_validator("subjects")
    @classmethod
    def _subjects(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        subjects = tuple(s.lower() for s in value)
        for s in subjects:
            if s.endswith(SHARED_SUBJECTS):
                raise ValueError(f"{s} is a certificate every tenant of a cloud service "
                                 "presents; it proves nothing about which tenant")
        return subjects

    @model_validator(mode="after")
    def _some(self) -> CertificateSource:
        if not self.fingerprints and not self.subjects:
            raise KeyProblem("fingerprints", "list fingerprints or subjects (or both)")
        return self


class AuthSource(Options):
    """SMTP AUTH users (server.auth_users_file), throttled and audited."""

    type: Literal["auth"]


def _kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return None if kind is None else f"({kind})"


SourceOptions = Annotated[
    Annotated[NetworkSource, Tag("(network)")] | Annotated[Microsoft365Source,
                                                           Tag("(microsoft365)")]
    | Annotated[GoogleSource, Tag("(google)")] | Annotated[CertificateSource,
                                                           Tag("(certificate)")]
    | Annotated[AuthSource, Tag("(auth)")], Discriminator(_kind)]
