"""What a message from a shared cloud range must carry to prove it is the school's own, read
from the top-level header block only (a header written in the body, or in an attached
message, is text, not a header).

Microsoft 365: Exchange Online stamps `X-MS-Exchange-CrossTenant-Id` (the tenant the message
was attributed to) and `X-MS-Exchange-Transport-CrossTenantHeadersStamped` on mail that
leaves a tenant. Exactly one tenant stamp is accepted: if Exchange Online added its own
beside one a sender forged, there are two; if it replaced it, the stamp names the sender's
tenant. Either way the message is refused. A shared secret header set by the school's own
transport rule adds proof that no other tenant can give. See docs/deploy/microsoft-365.md.

Google Workspace stamps no tenant id that a receiver can check, so the school's routing rule
adds a secret header ("Add custom headers") and the connection must use TLS.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from mailguard.sources.options import GUID

TENANT_HEADER = "X-MS-Exchange-CrossTenant-Id"
STAMPED_HEADER = "X-MS-Exchange-Transport-CrossTenantHeadersStamped"


@dataclass(frozen=True)
class Refusal:
    """Why a message from a cloud range is not the school's: a metric label, the tenant it
    claims (for the log; never the secret), and the words for the sender."""

    reason: str
    claimed: str
    words: str


def values(head: bytes, name: str) -> list[str]:
    """Every value of header `name` in a header block, unfolded and stripped. Found with
    bytes.find on the lower-cased block: a regex scan per message cost 20 us a header."""
    lower = head.lower()
    needle = name.lower().encode()
    out = []
    at = 0 if lower.startswith(needle) else lower.find(b"\n" + needle)
    while at >= 0:
        start = at + len(needle) + (lower[at:at + 1] == b"\n")
        rest = lower[start:start + 64].lstrip(b" \t")
        if rest[:1] == b":":
            colon = lower.index(b":", start)
            end = colon
            while True:   # the value runs on over folded lines (those starting with WSP)
                end = head.find(b"\n", end + 1)
                if end < 0 or head[end + 1:end + 2] not in (b" ", b"\t"):
                    break
            value = head[colon + 1:end if end >= 0 else len(head)]
            out.append(" ".join(value.decode("latin-1").split()))
        at = lower.find(b"\n" + needle, start)
    return out


def tenant_refusal(head: bytes, tenants: frozenset[str], org: str) -> Refusal | None:
    """None when the block carries exactly one tenant stamp and it is one of ours."""
    stamps = values(head, TENANT_HEADER)
    ours = f"mailguard relays only {org}'s tenant"
    if not stamps:
        return Refusal("m365_no_tenant", "", (
            f"Mail from a Microsoft 365 address without Exchange Online's tenant stamp "
            f"({TENANT_HEADER}): {ours}. Send through the trust's own Microsoft 365 "
            "outbound connector."))
    if len(stamps) > 1:
        return Refusal("m365_tenant_repeated", ",".join(s.lower()[:36] for s in stamps[:4]), (
            f"Mail from Microsoft 365 with {len(stamps)} tenant stamps ({TENANT_HEADER}); a "
            f"message leaving Exchange Online has one: {ours}."))
    claimed = stamps[0].lower().strip("{}")
    if not GUID.fullmatch(claimed) or claimed not in tenants:
        return Refusal("m365_other_tenant", claimed[:36], (
            f"Mail from Microsoft 365 for another tenant ({claimed[:36]}): {ours}. If this "
            "is the trust's own mail, IT must add its tenant id to the microsoft365 source."))
    if not values(head, STAMPED_HEADER):
        return Refusal("m365_not_stamped", claimed, (
            f"Mail from Microsoft 365 without Exchange Online's cross-tenant stamp "
            f"({STAMPED_HEADER}): {ours}."))
    return None


def secret_refusal(head: bytes, header: str, secret: str, service: str, org: str,
                   claimed: str = "") -> Refusal | None:
    """None when the block carries the secret header exactly once, with the right value."""
    given = values(head, header)
    if len(given) == 1 and hmac.compare_digest(given[0].encode(), secret.encode()):
        return None
    reason = "secret_missing" if not given else "secret_wrong"
    return Refusal(f"{service}_{reason}", claimed, (
        f"Mail from {_NAMES[service]} without {org}'s connector header: mailguard relays "
        f"only {org}'s own {_NAMES[service]}. IT: check the rule that adds {header}."))


_NAMES = {"m365": "Microsoft 365", "google": "Google Workspace"}


def without(raw: bytes, end: int, name: str) -> bytes:
    """The message with every `name` field (and its folded lines) cut from the header block
    ending at `end`: a secret header never goes on, into quarantine, or into a log."""
    pattern = re.compile(rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:.*(?:\r?\n[ \t].*)*\r?\n")
    head, n = pattern.subn(b"", raw[:end])
    return head + raw[end:] if n else raw
