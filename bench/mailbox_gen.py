"""Deterministic generator of a realistic mailbox for the sync benchmark.

Every message is a pure function of ``(seed, index)``: message 1234 is the same bytes
whatever the mailbox size, so a 10,000-message mailbox is a prefix of a 50,000-message
one, and "100 new messages" are simply the next hundred indices. Messages are produced
one at a time (:func:`messages` is a generator); the mailbox is never held in memory.

What a message looks like (proportions are per message, drawn from the seeded RNG):

* headers: Return-Path, two Received, From, To, (sometimes Cc), Subject (RFC 2047
  encoded when not ASCII), Date (monotonic in the index, about one message an hour from
  2019-01-01), a unique Message-ID ``<INDEX.SEED.bench@deskmail.example>``, MIME-Version,
  X-Mailer, List-Id/List-Unsubscribe for newsletters, In-Reply-To/References for replies;
* body: plain text (about 70 %), text + HTML ``multipart/alternative`` (about 30 %: every
  newsletter and some personal mail), about 12 % in UTF-8 quoted-printable, about a quarter
  replies quoting earlier text;
* about 3 % carry one base64 attachment (PDF, JPEG, ZIP or DOCX; random bytes) of
  0.2–2 MB before encoding, skewed towards the small end (mean about 0.46 MB);
* line ends are LF, as a local delivery agent writes them into a Maildir (IMAP servers
  send CRLF; :class:`MailboxStats` counts both sizes).

The average is about 30 KB per message (about 300 MB on disk for 10,000 messages).

Command line: ``python bench/mailbox_gen.py --count 10000 --stats`` prints the size
figures; ``--maildir DIR`` also writes the messages into ``DIR/cur`` as a Maildir.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import html
import os
import random
import sys
import time
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.header import Header
from pathlib import Path

DEFAULT_SEED = 20240501
MESSAGE_ID_DOMAIN = "bench@deskmail.example"
ATTACHMENT_RATE = 0.03
ATTACHMENT_MIN = 200 * 1024  # bytes before base64
ATTACHMENT_MAX = 2 * 1024 * 1024
HTML_RATE = 0.27
_EPOCH = dt.datetime(2019, 1, 1, 8, 0, tzinfo=dt.UTC)
_POOL_LINES = 24_000  # about 1.6 MB of wrapped text shared by all messages

_WORD_TEXT = (
    "the of and to a in is it you that he was for on are with as I his they be at one have this from or "
    "had by hot word but what some we can out other were all there when up use your how said an each she "
    "which do their time if will way about many then them write would like so these her long make thing "
    "see him two has look more day could go come did number sound no most people my over know water than "
    "call first who may down side been now find any new work part take get place made live where after "
    "back little only round man year came show every good me give our under name very through just form "
    "sentence great think say help low line differ turn cause much mean before move right boy old too "
    "same tell does set three want air well also play small end put home read hand port large spell add "
    "even land here must big high such follow act why ask men change went light kind off need house "
    "picture try us again animal point mother world near build self earth father head stand own page "
    "should country found answer school grow study still learn plant cover food sun four between state "
    "keep eye never last let thought city tree cross farm hard start might story saw far sea draw left "
    "late run while press close night real life few north open seem together next white children begin "
    "got walk example ease paper group always music those both mark often letter until mile river car "
    "feet care second book carry took science eat room friend began idea fish mountain stop once base "
    "hear horse cut sure watch color face wood main enough plain girl usual young ready above ever red "
    "list though feel talk bird soon body dog family direct pose leave song measure door product black "
    "short numeral class wind question happen complete ship area half rock order fire south problem "
    "piece told knew pass since top whole king space heard best hour better during hundred five remember "
    "step early hold west ground interest reach fast verb sing listen six table travel less morning ten "
    "simple several vowel toward war lay against pattern slow center love person money serve appear road "
    "map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry dark "
    "machine note wait plan figure star box noun field rest correct able pound done beauty drive stood "
    "contain front teach week final gave green quick develop ocean warm free minute strong special mind "
    "behind clear tail produce fact street inch multiply nothing course stay wheel full force blue object "
    "decide surface deep moon island foot system busy test record boat common gold possible plane stead "
    "dry wonder laugh thousand ago ran check game shape equate miss brought heat snow tire bring yes "
    "distant fill east paint language among invoice meeting agenda budget quarter report deadline "
    "project review draft contract schedule shipment order account server backup release customer"
)
_WORDS = _WORD_TEXT.split()
_ACCENTED = ("Grüße", "café", "naïve", "déjà", "Straße", "Müller", "über", "façade", "señor", "jalapeño",
             "smörgåsbord", "crème", "brûlée", "Zürich", "Ærøskøbing", "niño")

_FIRST = ("Ada", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Inés", "Jonas", "Kwame", "Lena",
          "Marta", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Victor", "Wen", "Yara",
          "Zoë", "Jürgen", "Amélie", "Søren")
_LAST = ("Keeper", "Lovelace", "Martin", "Nakamura", "Okafor", "Petrov", "Quintana", "Rossi", "Schmidt",
         "Tanaka", "Usman", "Varga", "Walsh", "Xu", "Young", "Zimmermann", "Müller", "Dubois", "García")
_DOMAINS = ("harbour.example", "lighthouse.example", "example.com", "example.org", "mail.example.net",
            "corp.example", "university.example", "shop.example", "bank.example", "family.example")
_NEWSLETTERS = (("Lighthouse Weekly", "news@lighthouse.example", "weekly.lighthouse.example"),
                ("Shop Deals", "deals@shop.example", "deals.shop.example"),
                ("Project Updates", "updates@corp.example", "updates.corp.example"),
                ("Python Digest", "digest@lists.example.org", "python-digest.lists.example.org"))
_MAILERS = ("Thunderbird 115.5.0", "Apple Mail (2.3731)", "Microsoft Outlook 16.0", "Evolution 3.46.4",
            "mutt/2.2.9", "K-9 Mail for Android", "Roundcube Webmail/1.6.5")
_ATTACHMENTS = (("application", "pdf", "report-{n}.pdf"), ("image", "jpeg", "IMG_{n}.jpg"),
                ("application", "zip", "archive-{n}.zip"),
                ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document", "notes-{n}.docx"))
RECIPIENT = "Bench User <bench@deskmail.example>"  # the same for every mailbox, so all copies are identical


def message_id(index: int, seed: int = DEFAULT_SEED) -> str:
    """The Message-ID (with angle brackets) of message ``index``."""
    return f"<{index}.{seed}.{MESSAGE_ID_DOMAIN}>"


def expected_message_ids(count: int, start: int = 0, seed: int = DEFAULT_SEED) -> set[str]:
    return {message_id(i, seed) for i in range(start, start + count)}


class _Pool:
    """A block of wrapped pseudo-English lines; message bodies are slices of it."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"pool:{seed}")
        lines: list[str] = []
        words = _WORDS
        while len(lines) < _POOL_LINES:
            sentence_words = rng.choices(words, k=rng.randint(6, 22))
            sentence = " ".join(sentence_words)
            if rng.random() < 0.03:
                sentence += " " + rng.choice(_ACCENTED)
            sentence = sentence[0].upper() + sentence[1:] + rng.choice(".....?!")
            # wrap one paragraph of several sentences at 72 columns
            para = [sentence]
            for _ in range(rng.randint(1, 6)):
                s = " ".join(rng.choices(words, k=rng.randint(6, 22)))
                para.append(s[0].upper() + s[1:] + ".")
            text = " ".join(para)
            line = ""
            for word in text.split(" "):
                if line and len(line) + 1 + len(word) > 72:
                    lines.append(line)
                    line = word
                else:
                    line = f"{line} {word}" if line else word
            lines.append(line)
            lines.append("")  # paragraph break
        self.lines = lines

    def text(self, rng: random.Random, approx_bytes: int) -> list[str]:
        """Consecutive lines (whole paragraphs where possible) adding up to about ``approx_bytes``."""
        start = rng.randrange(len(self.lines) - 1)
        while start > 0 and self.lines[start - 1] != "":
            start -= 1
        out: list[str] = []
        size = 0
        i = start
        n = len(self.lines)
        while size < approx_bytes:
            line = self.lines[i % n]
            out.append(line)
            size += len(line) + 1
            i += 1
        while out and out[-1] == "":
            out.pop()
        return out


_POOLS: dict[int, _Pool] = {}


def _pool(seed: int) -> _Pool:
    pool = _POOLS.get(seed)
    if pool is None:
        pool = _POOLS[seed] = _Pool(seed)
    return pool


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = unicodedata.normalize("NFKD", f"{first}.{last}".lower()).encode("ascii", "ignore").decode()
    return f"{first} {last}", f"{local}@{rng.choice(_DOMAINS)}"


def _encode_header(value: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(maxlinelen=76)


def _address(name: str, addr: str) -> str:
    if name.isascii():
        return f'"{name}" <{addr}>' if any(c in name for c in ",.;:") else f"{name} <{addr}>"
    return f"{_encode_header(name)} <{addr}>"


def _date(index: int, rng: random.Random) -> dt.datetime:
    # About one message an hour, strictly increasing with the index.
    return _EPOCH + dt.timedelta(seconds=index * 3600 + rng.randrange(3000))


def _body_size(rng: random.Random) -> int:
    # Log-normal text size: median about 4.5 KB, long tail (newsletters, long threads), capped.
    return min(int(rng.lognormvariate(8.4, 0.85)), 160_000)


def _attachment_size(rng: random.Random) -> int:
    # 0.2–2 MB, skewed towards the small end: mean about 0.46 MB.
    size = ATTACHMENT_MIN * 10 ** (rng.random() ** 3)
    return min(int(size), ATTACHMENT_MAX)


def _qp(text: str) -> bytes:
    return binascii.b2a_qp(text.encode("utf-8"))


def message(index: int, seed: int = DEFAULT_SEED) -> bytes:
    """Message number ``index`` (0-based) of the mailbox with ``seed``, LF line ends."""
    rng = random.Random(f"msg:{seed}:{index}")
    pool = _pool(seed)
    when = _date(index, rng)
    kind = rng.random()
    newsletter = kind < 0.18
    reply = not newsletter and rng.random() < 0.35
    has_html = newsletter or rng.random() < 0.15
    with_attachment = rng.random() < ATTACHMENT_RATE
    utf8 = rng.random() < 0.12

    if newsletter:
        nl_name, nl_addr, list_id = rng.choice(_NEWSLETTERS)
        sender_name, sender_addr = nl_name, nl_addr
    else:
        sender_name, sender_addr = _person(rng)
        list_id = ""
    topic = " ".join(rng.choices(_WORDS, k=rng.randint(2, 7))).capitalize()
    if utf8:
        topic += " " + rng.choice(_ACCENTED)
    subject = f"Re: {topic}" if reply else topic

    host = rng.choice(_DOMAINS)
    hdr: list[str] = [
        f"Return-Path: <{sender_addr}>",
        f"Received: from mx{rng.randint(1, 9)}.{host} (mx{rng.randint(1, 9)}.{host} "
        f"[192.0.2.{rng.randint(1, 254)}])\n\tby mail.deskmail.example (Postfix) with ESMTPS id "
        f"{rng.getrandbits(40):010X}\n\tfor <bench@deskmail.example>; {_fmt_date(when)}",
        f"Received: from [198.51.100.{rng.randint(1, 254)}] by {host} with ESMTPSA id "
        f"{rng.getrandbits(48):012x};\n\t{_fmt_date(when - dt.timedelta(seconds=rng.randint(1, 90)))}",
        f"From: {_address(sender_name, sender_addr)}",
        f"To: {RECIPIENT}",
    ]
    if rng.random() < 0.2:
        cc_name, cc_addr = _person(rng)
        hdr.append(f"Cc: {_address(cc_name, cc_addr)}")
    hdr += [
        f"Subject: {_encode_header(subject)}",
        f"Date: {_fmt_date(when)}",
        f"Message-ID: {message_id(index, seed)}",
    ]
    if reply and index > 0:
        parent = rng.randrange(max(0, index - 500), index)
        hdr.append(f"In-Reply-To: {message_id(parent, seed)}")
        hdr.append(f"References: {message_id(parent, seed)}")
    if list_id:
        hdr.append(f"List-Id: {sender_name} <{list_id}>")
        hdr.append(f"List-Unsubscribe: <mailto:unsubscribe@{sender_addr.split('@')[1]}>,"
                   f"\n <https://{sender_addr.split('@')[1]}/unsubscribe?u={rng.getrandbits(64):016x}>")
    else:
        hdr.append(f"X-Mailer: {rng.choice(_MAILERS)}")
    hdr.append("MIME-Version: 1.0")

    first_name = RECIPIENT.split()[0]
    lines = [f"Hello {first_name}," if not newsletter else f"{sender_name} - issue {index}", ""]
    lines += pool.text(rng, _body_size(rng))
    if reply:
        quoted = pool.text(rng, rng.randint(300, 4000))
        lines += ["", f"On {_fmt_date(when - dt.timedelta(days=1))}, {first_name} wrote:"]
        lines += [f"> {q}" if q else ">" for q in quoted]
    lines += ["", "-- ", f"{sender_name}"]
    text = "\n".join(lines) + "\n"

    if utf8:
        text_part_headers = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable"
        text_payload = _qp(text)
    else:
        # the pool is ASCII unless a sentence carries an accented word: then 8bit UTF-8
        raw_text = text.encode("utf-8")
        cte = "7bit" if raw_text.isascii() else "8bit"
        text_part_headers = f"Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Transfer-Encoding: {cte}"
        text_payload = raw_text

    boundary_alt = f"=_alt_{rng.getrandbits(64):016x}"
    boundary_mix = f"=_mix_{rng.getrandbits(64):016x}"
    if has_html:
        html_body = _html(lines, subject)
        body_part = (
            f"Content-Type: multipart/alternative; boundary=\"{boundary_alt}\"\n\n"
            f"--{boundary_alt}\n{text_part_headers}\n\n".encode() + text_payload
            + f"\n--{boundary_alt}\nContent-Type: text/html; charset=utf-8\n"
              "Content-Transfer-Encoding: quoted-printable\n\n".encode()
            + _qp(html_body) + f"\n--{boundary_alt}--\n".encode()
        )
    else:
        body_part = f"{text_part_headers}\n\n".encode() + text_payload

    if with_attachment:
        maintype, subtype, pattern = rng.choice(_ATTACHMENTS)
        filename = pattern.format(n=index)
        payload = base64.encodebytes(rng.randbytes(_attachment_size(rng)))
        top = (f"Content-Type: multipart/mixed; boundary=\"{boundary_mix}\"\n\n"
               "This is a multi-part message in MIME format.\n\n")
        body = (
            top.encode() + f"--{boundary_mix}\n".encode() + body_part
            + f"\n--{boundary_mix}\nContent-Type: {maintype}/{subtype}; name=\"{filename}\"\n"
              f"Content-Disposition: attachment; filename=\"{filename}\"\n"
              "Content-Transfer-Encoding: base64\n\n".encode()
            + payload + f"--{boundary_mix}--\n".encode()
        )
        return "\n".join(hdr).encode() + b"\n" + body
    return "\n".join(hdr).encode() + b"\n" + body_part


def _fmt_date(when: dt.datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


def _html(lines: list[str], subject: str) -> str:
    paras: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line:
            current.append(html.escape(line))
        elif current:
            paras.append("<p style=\"margin:0 0 12px 0;font-family:Arial,sans-serif;font-size:14px\">"
                         + "<br>\n".join(current) + "</p>")
            current = []
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(subject)
        + "</title></head>\n<body style=\"background:#ffffff\">\n<table width=\"100%\" cellpadding=\"0\" "
        "cellspacing=\"0\"><tr><td>\n" + "\n".join(paras) + "\n</td></tr></table>\n</body></html>\n"
    )


def messages(count: int, start: int = 0, seed: int = DEFAULT_SEED) -> Iterator[bytes]:
    """Messages ``start`` .. ``start + count - 1``, one at a time."""
    for index in range(start, start + count):
        yield message(index, seed)


@dataclass
class MailboxStats:
    """Size figures, filled in while the messages stream past (see :meth:`count`)."""

    messages: int = 0
    lf_bytes: int = 0  # as generated (LF line ends), i.e. on disk in the server's Maildir
    crlf_bytes: int = 0  # as sent over IMAP/POP3 (CRLF)
    with_attachment: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list, repr=False)

    def count(self, stream: Iterable[bytes]) -> Iterator[bytes]:
        for raw in stream:
            size = len(raw)
            self.messages += 1
            self.lf_bytes += size
            self.crlf_bytes += size + raw.count(b"\n")
            self.largest = max(self.largest, size)
            if b"Content-Disposition: attachment" in raw:
                self.with_attachment += 1
            self.sizes.append(size)
            yield raw

    def summary(self) -> dict[str, float | int]:
        sizes = sorted(self.sizes)
        median = sizes[len(sizes) // 2] if sizes else 0
        return {
            "messages": self.messages,
            "mb": round(self.lf_bytes / 1e6, 1),
            "mb_crlf": round(self.crlf_bytes / 1e6, 1),
            "mean_kb": round(self.lf_bytes / max(1, self.messages) / 1e3, 1),
            "median_kb": round(median / 1e3, 1),
            "largest_mb": round(self.largest / 1e6, 2),
            "with_attachment": self.with_attachment,
        }


def _write_maildir(directory: Path, stream: Iterable[bytes]) -> None:
    for sub in ("cur", "new", "tmp"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(stream):
        name = f"bench.{n:08d}.deskmail,S={len(raw)}:2,S"
        tmp = directory / "tmp" / name
        tmp.write_bytes(raw)
        os.rename(tmp, directory / "cur" / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000, help="number of messages (default 1000)")
    parser.add_argument("--start", type=int, default=0, help="index of the first message")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--maildir", type=Path, help="write the messages into this Maildir (cur/)")
    parser.add_argument("--stats", action="store_true", help="print the size figures (the default without --maildir)")
    args = parser.parse_args(argv)
    stats = MailboxStats()
    started = time.monotonic()
    stream = stats.count(messages(args.count, args.start, args.seed))
    if args.maildir:
        _write_maildir(args.maildir, stream)
    else:
        for _ in stream:
            pass
    summary = stats.summary()
    summary["seconds"] = round(time.monotonic() - started, 2)
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
