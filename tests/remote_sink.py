"""F-33's bench: a local HTTP sink that records every connection and request, and a set of hostile-HTML
messages whose every way of loading something points at that sink.

Each message's URLs carry its name as the first path segment (``/<name>/...``), so a request names the
message that caused it. ``PWNED`` appears only inside scripts, handlers and the ``<title>``: it must never
reach what is shown.
"""

from __future__ import annotations

import base64
import http.server
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8ffff3f0005fe02fea7d6a4f30000000049454e44ae426082")


class Sink:
    """Counts accepted connections (a preconnect or a TLS hello to it counts too) and HTTP requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self) -> None:
                outer.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(PNG)

            do_GET = do_HEAD = do_POST = do_OPTIONS = answer

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                outer.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alive(self) -> bool:
        """The sink answers (so zero requests means nobody asked, not that nobody could)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /probe HTTP/1.0\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _html_message(name: str, html: str, *, sender: str = "Promo <promo@shop.example>") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, "you@example.test", f"remote {name}"
    m["Date"] = "Fri, 04 Dec 2026 10:00:00 +0000"
    m["Message-ID"] = f"<remote-{name}@shop.example>"
    m.set_content(f"The text version of {name}.\n")
    m.add_alternative(html, subtype="html")
    return m.as_bytes().replace(b"\n", b"\r\n")


def _svg(u: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" '
            f'height="10"><image href="{u}/svg-href.png" width="10" height="10"/>'
            f'<image xlink:href="{u}/svg-xlink.png"/><use href="{u}/use.svg#a"/>'
            f'<style>@import url({u}/svg-import.css);</style>'
            f'<script>document.title="PWNED"</script></svg>')


def messages(base: str) -> dict[str, bytes]:
    """The hostile-HTML set, every remote reference pointing at ``base`` (the sink's URL)."""
    def u(name: str) -> str:
        return f"{base}/{name}"

    bodies = {
        # The one message the person allows in the tests: a plain image, plus two other ways to load.
        "tracker": f'<p>Your order shipped.</p><img src="{u("tracker")}/pixel.png" width="1" height="1">'
                   f'<img srcset="{u("tracker")}/srcset.png 2x"><p style="background:url({u("tracker")}/css.png)">'
                   f'x</p>',
        "srcset": f'<img srcset="{u("srcset")}/a.png 1x, {u("srcset")}/b.png 2x" alt="s">'
                  f'<picture><source srcset="{u("srcset")}/c.webp" type="image/webp">'
                  f'<img src="cid:nothing@x" alt="p"></picture>',
        "css-url": f'<div style="background-image: url(\'{u("css-url")}/a.png\')">a</div>'
                   f'<div style="background: #fff url({u("css-url")}/b.png) no-repeat">b</div>'
                   f'<ul style="list-style-image: url({u("css-url")}/c.png)"><li>c</li></ul>'
                   f'<div style="background-image: image-set(\'{u("css-url")}/d.png\' 1x)">d</div>'
                   f'<div style="background:u\\72l({u("css-url")}/e.png)">e</div>'
                   f'<div style="border-image: url({u("css-url")}/f.png) 30">f</div>'
                   f'<div style="cursor: url({u("css-url")}/g.cur), auto">g</div>'
                   f'<div style="background:url(&quot;{u("css-url")}/h.png&quot;)">h</div>',
        "style-block": f'<html><head><style>@import url("{u("style-block")}/import.css");'
                       f'@import "{u("style-block")}/import2.css";'
                       f'@font-face {{ font-family: x; src: url({u("style-block")}/font.woff) }}'
                       f'body {{ background: url({u("style-block")}/bg.png); font-family: x }}</style></head>'
                       f'<body><p>Styled</p></body></html>',
        "link": f'<html><head><link rel="stylesheet" href="{u("link")}/s.css">'
                f'<link rel="prefetch" href="{u("link")}/prefetch"><link rel="preload" as="image" '
                f'href="{u("link")}/preload.png"><link rel="dns-prefetch" href="{u("link")}/dns">'
                f'<link rel="preconnect" href="{u("link")}/pre"><link rel="icon" href="{u("link")}/icon.ico">'
                f'</head><body>links</body></html>',
        "background-attr": f'<body background="{u("background-attr")}/body.png"><table '
                           f'background="{u("background-attr")}/table.png"><tr background='
                           f'"{u("background-attr")}/tr.png"><td background="{u("background-attr")}/td.png">'
                           f'cell</td></tr></table></body>',
        "media": f'<video poster="{u("media")}/poster.jpg" src="{u("media")}/v.mp4" autoplay>'
                 f'<source src="{u("media")}/s.mp4"><track src="{u("media")}/t.vtt"></video>'
                 f'<audio src="{u("media")}/a.mp3" autoplay></audio><bgsound src="{u("media")}/b.wav">'
                 f'<img dynsrc="{u("media")}/dyn.avi" lowsrc="{u("media")}/low.png">',
        "object-embed": f'<object data="{u("object-embed")}/o.swf"><param name="movie" '
                        f'value="{u("object-embed")}/p.swf"></object><embed src="{u("object-embed")}/e.swf">'
                        f'<applet code="x" codebase="{u("object-embed")}/applet"></applet>'
                        f'<iframe src="{u("object-embed")}/frame.html"></iframe>'
                        f'<frameset><frame src="{u("object-embed")}/f.html"></frameset>'
                        f'<portal src="{u("object-embed")}/portal"></portal>',
        "meta-base": f'<html><head><meta http-equiv="refresh" content="0;url={u("meta-base")}/refresh">'
                     f'<base href="{u("meta-base")}/base/"><title>PWNED title</title></head><body>'
                     f'<img src="relative.png" alt="rel"><a href="page.html">relative link</a></body></html>',
        "svg": f'<p>inline svg</p>{_svg(u("svg"))}<img src="data:image/svg+xml;base64,'
               f'{base64.b64encode(_svg(u("svg")).encode()).decode()}">',
        "script": f'<script src="{u("script")}/s.js"></script><script>document.title="PWNED";'
                  f'fetch("{u("script")}/fetch");new Image().src="{u("script")}/img"</script>'
                  f'<img src="x" onerror="this.src=\'{u("script")}/onerror.png\';document.title=\'PWNED\'">'
                  f'<body onload="document.title=\'PWNED\'"><a href="javascript:document.title=\'PWNED\'">js</a>'
                  f'<input type="image" src="{u("script")}/input.png"><form action="{u("script")}/post" '
                  f'method="post"><button formaction="{u("script")}/b">Go</button></form>'
                  f'<a href="{u("script")}/ping-target" ping="{u("script")}/ping">https://bank.example/</a>'
                  f'<iframe srcdoc="<img src={u("script")}/srcdoc.png>"></iframe></body>',
        "obfuscated": f'<img src="//127.0.0.1:{base.rsplit(":", 1)[1]}/obfuscated/protocol-relative.png">'
                      f'<IMG SRC="{u("obfuscated").upper()}/UPPER.PNG">'
                      f'<img src="h&#116;tp://127.0.0.1:{base.rsplit(":", 1)[1]}/obfuscated/entity.png">'
                      f'<img src=" {u("obfuscated")}/space.png">'
                      f'<img src="{u("obfuscated")}/nul.png\x00">'
                      f'<noscript><img src="{u("obfuscated")}/noscript.png"></noscript>'
                      f'<!--[if gte mso 9]><img src="{u("obfuscated")}/conditional.png"><![endif]-->',
    }
    out = {name: _html_message(name, html) for name, html in bodies.items()}

    # cid parts: an SVG picture of the message (naming the sink inside) and an HTML part by cid.
    related = EmailMessage()
    related["From"], related["To"], related["Subject"] = "Promo <promo@shop.example>", "you@example.test", "remote cid"
    related["Message-ID"] = "<remote-cid@shop.example>"
    related.set_content("text of cid\n")
    related.add_alternative(f'<p>pictures</p><img src="cid:pic@shop.example" alt="svg">'
                            f'<img src="cid:page@shop.example" alt="page">'
                            f'<img src="{u("cid")}/beside.png">', subtype="html")
    html_part = related.get_payload()[1]
    html_part.add_related(_svg(u("cid")).encode(), maintype="image", subtype="svg+xml", cid="<pic@shop.example>")
    html_part.add_related(f'<img src="{u("cid")}/in-page.png">'.encode(), maintype="text", subtype="html",
                          cid="<page@shop.example>")
    out["cid"] = related.as_bytes().replace(b"\n", b"\r\n")

    # A forwarded message whose own HTML names the sink.
    forwarded = EmailMessage()
    forwarded["From"], forwarded["To"] = "Friend <friend@example.test>", "you@example.test"
    forwarded["Subject"], forwarded["Message-ID"] = "remote forwarded", "<remote-forwarded@example.test>"
    forwarded.set_content("Look at this one.\n")
    inner = _html_message("forwarded", f'<img src="{u("forwarded")}/inner.png"><div style="background:url('
                                       f'{u("forwarded")}/inner-css.png)">inner</div>', sender="x@shop.example")
    forwarded.add_attachment(message_from_bytes(inner, policy=policy.default), disposition="inline")
    out["forwarded"] = forwarded.as_bytes().replace(b"\n", b"\r\n")
    return out
