"""The milter protocol, version 6, as Sendmail's libmilter and Postfix speak it: packets, the
option negotiation, and the edits and replies mailguard sends. Pure: bytes in, values out.

A packet is a 4-byte big-endian length (counting the command byte), a command byte, and its
data; strings in the data end with NUL. The constants are libmilter's (mfdef.h, mfapi.h).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from mailguard.rewrite.edits import Edits

VERSION = 6
CHUNK = 65535          # the largest body chunk either side sends
MAX_PACKET = 1 << 24   # anything longer is not the protocol: the connection is dropped

# What the MTA sends.
ABORT, BODY, CONNECT, MACRO, END, HELO, QUIT_NC, HEADER, MAIL, EOH, OPTNEG, QUIT, RCPT, \
    DATA, UNKNOWN = b"ABCDEHKLMNOQRTU"

# What mailguard answers.
ACCEPT, CONTINUE, DISCARD, REPLYCODE = b"a", b"c", b"d", b"y"
ADDHEADER, INSHEADER, CHGHEADER, REPLBODY = b"h", b"i", b"m", b"b"

# Actions: only what the policy's plans need (no envelope changes, as in relay mode).
ADDHDRS, CHGBODY, CHGHDRS, SETSYMLIST = 0x01, 0x02, 0x10, 0x100
NEEDED = ADDHDRS | CHGBODY | CHGHDRS

# Protocol steps: skip what is not read (DATA, end of headers, unknown commands), no reply
# where only the end of the message decides, and header values exactly as written.
NOEOH, NOUNKNOWN, NODATA = 0x40, 0x100, 0x200
NO_REPLY = {CONNECT: 0x1000, HELO: 0x2000, MAIL: 0x4000, RCPT: 0x8000, DATA: 0x10000,
            UNKNOWN: 0x20000, EOH: 0x40000, HEADER: 0x80, BODY: 0x80000}
HDR_LEADSPC = 0x100000
WANTED = NOEOH | NOUNKNOWN | NODATA | HDR_LEADSPC | sum(NO_REPLY.values())

# The macros read, by stage (SMFIM_*): TLS at HELO, the signed-in user at MAIL, the MTA's
# queue id at the end (for the event).
MACROS = {1: b"{tls_version}", 2: b"{auth_authen} i", 5: b"i"}


class ProtocolError(ValueError):
    """Bytes that are not the milter protocol: the connection is dropped (the MTA's
    milter_default_action = tempfail keeps the mail)."""


def packet(command: bytes | int, data: bytes = b"") -> bytes:
    code = bytes([command]) if isinstance(command, int) else command
    return struct.pack(">I", len(data) + 1) + code + data


def length(head: bytes) -> int:
    size = int.from_bytes(head, "big")
    if not 0 < size <= MAX_PACKET:
        raise ProtocolError(f"a packet of {size} bytes")
    return size


def strings(data: bytes) -> list[bytes]:
    """NUL-terminated strings, as MAIL, RCPT, HEADER and the macros carry them."""
    parts = data.split(b"\0")
    return parts[:-1] if parts and parts[-1] == b"" else parts


@dataclass(frozen=True)
class Agreed:
    """What the MTA and mailguard settled on for one connection."""

    protocol: int
    reply: bytes   # the OPTNEG packet to send back

    def replies_to(self, command: int) -> bool:
        return not self.protocol & NO_REPLY.get(command, 0)


def negotiate(data: bytes) -> Agreed:
    """mailguard's answer to the MTA's offer: version 6, the actions the plans need, the
    steps it can skip, and (where the MTA lets it choose) only the macros it reads."""
    if len(data) < 12:
        raise ProtocolError("a short option negotiation")
    version, actions, offered = struct.unpack(">III", data[:12])
    if version < 2 or actions & NEEDED != NEEDED:
        raise ProtocolError(f"the MTA (milter version {version}) does not let a filter "
                            "change headers and body")
    protocol = offered & WANTED
    ours = NEEDED | (actions & SETSYMLIST)
    reply = struct.pack(">III", min(version, VERSION), ours, protocol)
    if ours & SETSYMLIST:
        reply += b"".join(struct.pack(">I", stage) + names + b"\0"
                          for stage, names in MACROS.items())
    return Agreed(protocol, packet(OPTNEG, reply))


def macros(data: bytes) -> dict[bytes, bytes]:
    pairs = strings(data[1:])
    return dict(zip(pairs[::2], pairs[1::2], strict=False))


def connect_address(data: bytes) -> str:
    """The client's IP address from CONNECT ("" for a UNIX socket or an unknown family)."""
    rest = data.partition(b"\0")[2]
    if rest[:1] in (b"4", b"6") and len(rest) > 3:
        return rest[3:].rstrip(b"\0").decode("ascii", "replace").removeprefix("IPv6:")
    return ""


def edit_packets(edits: Edits) -> Iterator[bytes]:
    """The edits, in the order they must be applied: insertions on top (last first, so they
    end in order), changes and deletions, additions at the end, then the new body."""
    def field(name: str, value: str) -> bytes:
        return (name.encode("ascii", "surrogateescape") + b"\0"
                + value.encode("utf-8", "surrogateescape").replace(b"\0", b"") + b"\0")

    for name, value in reversed(edits.top):
        yield packet(INSHEADER, struct.pack(">I", 0) + field(name, value))
    for name, nth, value in edits.change:
        yield packet(CHGHEADER, struct.pack(">I", nth) + field(name, value))
    for name, value in edits.append:
        yield packet(ADDHEADER, field(name, value))
    if edits.body is not None:
        for start in range(0, max(len(edits.body), 1), CHUNK):
            yield packet(REPLBODY, edits.body[start:start + CHUNK])


def reply_code(reply: str) -> bytes:
    """A 4xx/5xx reply of ours (one or more lines, CRLF between them) as REPLYCODE."""
    return packet(REPLYCODE, reply.encode("ascii", "replace") + b"\0")
