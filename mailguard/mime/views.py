"""What a message says, as text: the sender's own words apart from what they quote or forward.

Checks that read language read these views, so a teacher forwarding a parent's abusive mail
to the head is judged on their own words, and the forwarded words count for less.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from mailguard.mime import quotes
from mailguard.mime.parts import displayed, text_of
from mailguard.model import Mail


@dataclass(frozen=True)
class TextViews:
    own: str     # subject and the newest text of every displayed body
    quoted: str  # the quoted thread or forwarded message below it


# What a reader never sees: style sheets, scripts, the head, and comments (Outlook's
# conditional blocks among them). Their words are not the sender's words.
_INVISIBLE = re.compile(r"(?is)<(script|style|head|title)\b.*?</\1\s*>|<!--.*?-->")


def html_to_text(markup: str) -> str:
    """The words an HTML body shows, tags and invisible blocks removed, entities decoded."""
    return html.unescape(quotes.TAG.sub(" ", _INVISIBLE.sub(" ", markup)))


def views(mail: Mail) -> TextViews:
    """The message's text views, worked out once however many checks read them."""
    if mail.views_cache is None:
        mail.views_cache = _views(mail)
    return mail.views_cache


def _views(mail: Mail) -> TextViews:
    own = [mail.subject]
    quoted = []
    for part in displayed(mail.parts):
        text = text_of(mail.raw, part, as_shown=True)
        if text is None:
            continue
        if part.content_type == "text/html":
            at = quotes.html_thread_start(text)
            head, tail = (text, "") if at is None else (text[:at], text[at:])
            own.append(html_to_text(head))
            quoted.append(html_to_text(tail))
        else:
            at = quotes.text_thread_start(text)
            own.append(text if at is None else text[:at])
            quoted.append("" if at is None else text[at:])
    return TextViews("\n".join(own), "\n".join(q for q in quoted if q))
