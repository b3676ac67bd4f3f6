"""F-33 in the engine: a set of hostile-HTML messages (every way HTML can load something) delivered to
Dovecot, synced, rendered and read through the CLI, while a local HTTP sink that every reference points
at records each connection. The GUI's side is ``tests/gui/test_remote_content_window.py``."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from deskmail.app import Deskmail
from deskmail.cli.main import main
from helpers import Home, add_imaps_account
from remote_sink import Sink, messages

pytestmark = pytest.mark.servers


class _Refs(HTMLParser):
    """Every (tag, attribute) whose value names the sink."""

    def __init__(self, needle: str) -> None:
        super().__init__(convert_charrefs=True)
        self.needle = needle
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [(tag, k, v) for k, v in attrs if v and self.needle in v]

    def handle_data(self, data: str) -> None:
        if self.needle in data:
            self.found.append(("#text", "", data))


def sink_refs(html: str, port: int) -> set[tuple[str, str]]:
    parser = _Refs(f":{port}")
    parser.feed(html)
    parser.close()
    return {(tag, attr) for tag, attr, _ in parser.found}


@pytest.fixture
def sink() -> Any:
    s = Sink()
    yield s
    s.close()


def test_hostile_html_set_loads_nothing_until_allowed_then_only_that_messages_image(
        sandbox: Any, mail_user: Any, tmp_path: Path, sink: Sink, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    corpus = messages(sink.url)
    names = sorted(corpus)
    home = Home(tmp_path / "home")
    home.env["DM_PW"] = mail_user.password
    add_imaps_account(home, sandbox, mail_user)
    assert sandbox.fill_maildir(mail_user.email, [corpus[n] for n in names]) == len(names)
    synced = home.run("sync")
    assert synced.returncode == 0, synced.stderr
    monkeypatch.setenv("DESKMAIL_HOME", str(home.root))
    monkeypatch.setenv("DM_PW", mail_user.password)
    app = Deskmail()
    rows = json.loads(home.run("list", "--limit", "100", "--json").stdout)
    ids = {names[int(r["uid"]) - 1]: r["id"] for r in rows}
    assert set(ids) == set(names)

    for name in names:
        for allow in (False, None):  # refused, and "as the allow list says" (empty)
            r = app.render_message(ids[name], allow_remote=allow)
            assert not r.remote_allowed and app.remote_images(r) == {}, name
            # The sink survives only as a link target (shown, never loaded).
            assert sink_refs(r.html, sink.port) <= {("a", "href")}, (name, sink_refs(r.html, sink.port))
            assert "PWNED" not in r.html and "PWNED" not in r.text, name
            assert "<script" not in r.html.lower() and "onerror" not in r.html.lower(), name
        for args in (["read", str(ids[name])], ["read", str(ids[name]), "--html"],
                     ["read", str(ids[name]), "--json"]):
            assert main(args) == 0, (name, args)
            assert "PWNED" not in capsys.readouterr().out, (name, args)
    tracker = app.render_message(ids["tracker"])
    assert tracker.blocked_remote == 1  # the plain <img src>; srcset and CSS url() are not even counted
    script = app.render_message(ids["script"])
    assert [(s.text, s.href) for s in script.suspicious_links] == [("https://bank.example/",
                                                                    f"{sink.url}/script/ping-target")]
    assert sink.requests == [] and sink.connections == 0  # neither rendering, nor the CLI, asked for anything

    # Allowed, every message keeps only plain <img src> to load: srcset, CSS, links, media stay out.
    for name in names:
        r = app.render_message(ids[name], allow_remote=True)
        assert sink_refs(r.html, sink.port) <= {("a", "href"), ("img", "src")}, (name, sink_refs(r.html, sink.port))
    assert sink.requests == [] and sink.connections == 0

    # "Load remote content" for one message: the sink sees that message's image, and only it.
    got = app.remote_images(app.render_message(ids["tracker"], allow_remote=True))
    assert list(got) == [f"{sink.url}/tracker/pixel.png"] and got[f"{sink.url}/tracker/pixel.png"][1][:4] == b"\x89PNG"
    assert sink.requests == ["/tracker/pixel.png"] and sink.connections == 1
    assert sink.alive()  # the sink was listening all along
