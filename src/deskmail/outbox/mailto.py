"""``mailto:`` links (RFC 6068) made into a draft, for the desktop's "send mail to" handler.

Only what a link may safely propose is taken: recipients (to, cc, bcc), subject, body and the
thread's In-Reply-To. A link cannot attach files, set the sender or add other headers.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from deskmail.codes import Code
from deskmail.errors import UsageError
from deskmail.outbox.compose import Draft


def _split(value: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in value.split(",") if a.strip())


def parse_mailto(url: str) -> Draft:
    if not url.lower().startswith("mailto:"):
        raise UsageError(f"{url!r} is not a mailto: link", "", "give a link like mailto:name@example.com",
                         code=Code.USAGE)
    parts = urlsplit(url)
    to = list(_split(unquote(parts.path)))
    cc: list[str] = []
    bcc: list[str] = []
    subject = body = in_reply_to = ""
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        key = key.lower()
        if key == "to":
            to += _split(value)
        elif key == "cc":
            cc += _split(value)
        elif key == "bcc":
            bcc += _split(value)
        elif key == "subject":
            subject = value.replace("\r", " ").replace("\n", " ")
        elif key == "body":
            body = value.replace("\r\n", "\n")
        elif key == "in-reply-to":
            in_reply_to = value.strip()
    return Draft(to=tuple(to), cc=tuple(cc), bcc=tuple(bcc), subject=subject, body=body, in_reply_to=in_reply_to)
