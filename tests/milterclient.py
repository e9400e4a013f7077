"""The MTA's side of the milter protocol, as Postfix's milter8 speaks it, for tests that need
to send what Postfix never would: packets cut at every byte, several messages in one write,
silence. Talks to a real `mailguard milter` over loopback; Postfix itself is tests/milter.py.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

# Postfix offers every action and step it knows (milter8.c: SMFIF_ALL, SMFIP_ALL).
OFFER = struct.pack(">III", 6, 0x1FF, 0x1FFFFF)
FINAL = set(b"adyrt")   # accept, discard, reply code, reject, tempfail
NO_REPLY = {b"C": 0x1000, b"H": 0x2000, b"M": 0x4000, b"R": 0x8000, b"L": 0x80, b"B": 0x80000}


def packet(code: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(data) + 1) + code + data


@dataclass
class Answer:
    """What the milter said to one message: its edits in order, and the final packet."""

    code: bytes
    data: bytes
    edits: list[tuple[bytes, bytes]] = field(default_factory=list)

    def text(self) -> str:
        return self.data.rstrip(b"\0").decode("ascii", "replace")


class MilterClient:
    """One MTA connection. `write` says how bytes go out: "whole" (a packet a write), "bytes"
    (one byte a write), or "batch" (kept until the next read, then sent in one write)."""

    def __init__(self, where: int | str, write: str = "whole", timeout: float = 30) -> None:
        if isinstance(where, int):
            self.sock = socket.create_connection(("127.0.0.1", where), timeout=timeout)
        else:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(where)
        self.mode = write
        self.pending = b""
        self.send(packet(b"O", OFFER))
        code, data = self.read()
        assert code == b"O", code
        self.version, self.actions, self.protocol = struct.unpack(">III", data[:12])

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        if self.mode == "batch":
            self.pending += data
        elif self.mode == "bytes":
            for i in range(len(data)):
                self.sock.sendall(data[i:i + 1])
        else:
            self.sock.sendall(data)

    def read(self) -> tuple[bytes, bytes]:
        if self.pending:
            self.sock.sendall(self.pending)
            self.pending = b""
        head = self._exactly(4)
        body = self._exactly(struct.unpack(">I", head)[0])
        return body[:1], body[1:]

    def _exactly(self, n: int) -> bytes:
        got = b""
        while len(got) < n:
            chunk = self.sock.recv(n - len(got))
            if not chunk:
                raise ConnectionResetError("the milter closed the connection")
            got += chunk
        return got

    def command(self, code: bytes, data: bytes = b"") -> None:
        """One command; its CONTINUE read where the milter did not ask for no reply."""
        self.send(packet(code, data))
        if code in NO_REPLY and not self.protocol & NO_REPLY[code]:
            assert self.read()[0] == b"c"

    def connect(self, ip: str = "192.0.2.10", helo: str = "staff-pc.example.sch.uk") -> None:
        self.send(packet(b"D", b"C{daemon_name}\0smtpd\0"))
        self.command(b"C", b"staff-pc\0" + b"4" + struct.pack(">H", 25) + ip.encode() + b"\0")
        self.command(b"H", helo.encode() + b"\0")

    def message(self, sender: str, recipients: list[str], raw: bytes,
                queue_id: str = "4ABC123") -> Answer:
        """One message, as Postfix sends it, and everything the milter answers to it."""
        self.put(sender, recipients, raw, queue_id)
        return self.verdict()

    def put(self, sender: str, recipients: list[str], raw: bytes,
            queue_id: str = "4ABC123") -> None:
        """One message's packets: the envelope, each header, the body in chunks of at most
        65535 bytes, the end (in "batch" mode, still unsent until the next read)."""
        self.send(packet(b"D", b"M{mail_addr}\0" + sender.encode() + b"\0"))
        self.command(b"M", f"<{sender}>\0".encode())
        for rcpt in recipients:
            self.command(b"R", f"<{rcpt}>\0".encode())
        head, _, body = raw.partition(b"\r\n\r\n")
        for line in _fields(head):
            name, _, value = line.partition(b":")
            self.command(b"L", name + b"\0" + value.replace(b"\r\n", b"\n") + b"\0")
        for start in range(0, len(body), 65535):
            self.command(b"B", body[start:start + 65535])
        self.send(packet(b"D", b"Ei\0" + queue_id.encode() + b"\0"))
        self.send(packet(b"E"))

    def verdict(self) -> Answer:
        """Edits, then the final packet, for the next message put."""
        answer = Answer(b"", b"")
        while True:
            code, data = self.read()
            if code[0] in FINAL or code == b"c":
                answer.code, answer.data = code, data
                return answer
            answer.edits.append((code, data))


def _fields(head: bytes) -> list[bytes]:
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return fields


def edited(raw: bytes, answer: Answer) -> bytes:
    """The message as the MTA keeps it once the edits are applied (enough for the tests:
    added headers at the end, inserted ones on top, the body replaced)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    top: list[bytes] = []
    fields = _fields(head)
    new_body: bytes | None = None
    for code, data in answer.edits:
        if code == b"h":
            name, value, _ = data.split(b"\0")
            fields.append(name + b":" + value.replace(b"\n", b"\r\n"))
        elif code == b"i":
            name, value, _ = data[4:].split(b"\0")
            top.insert(0, name + b":" + value.replace(b"\n", b"\r\n"))
        elif code == b"b":
            new_body = (new_body or b"") + data
    return b"\r\n".join(top + fields) + b"\r\n\r\n" + (body if new_body is None else new_body)
