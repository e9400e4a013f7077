"""Subject rewrites: a tag put in front of the subject, every other byte left as it was."""

from __future__ import annotations

from mailguard import mime
from mailguard.mime import linesep, name_of, split_block
from mailguard.rewrite.headers import replace


def tagged(raw: bytes, tag: str) -> bytes:
    """The message with `tag` before its subject ("Personal: Dinner on Friday"); a message
    with no Subject gets one."""
    end = mime.header_end(raw)
    block = raw[:end]
    items, _ = split_block(block)
    current = next((item for item in items if name_of(item) == b"subject"), None)
    if current is None:
        new = b"Subject: " + tag.encode() + linesep(raw)
    else:
        name, _, value = current.partition(b":")
        new = name + b": " + tag.encode() + b" " + value.lstrip(b" \t")
    return replace(block, b"subject", [new]) + raw[end:]
