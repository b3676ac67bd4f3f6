"""Identities and signatures: the accounts file keeps them, the façade guards them, drafts carry them.

Pure logic plus the accounts file in a temporary folder; sending from an identity against the real servers is
in tests/test_identities_send.py.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskmail import config
from deskmail.app import Deskmail
from deskmail.codes import Code
from deskmail.errors import ConfigError, DeskmailError
from deskmail.model import Account, Identity, PasswordSource, Protocol, Security, ServerSettings
from deskmail.outbox.compose import Draft, build_message
from deskmail.outbox.drafts import draft_from_message, draft_writer
from deskmail.outbox.identities import SEPARATOR, change_sender, make_identity, with_signature
from deskmail.outbox.reply import forward_draft, reply_draft

WORK = Identity("me@work.example", "Me at Work", "desk@work.example", "Me\nWork Ltd.")
LIST = Identity("me+lists@example.org", "", "", "")
ME = Account("me", "me@example.org", "Me", ServerSettings(Protocol.IMAP, "imap.example.org", 993, Security.SSL, "me"),
             ServerSettings(Protocol.SMTP, "smtp.example.org", 587, Security.STARTTLS, "me"),
             password=PasswordSource("env", env="NOPE"), signature="-- but mine\nMe", identities=(WORK, LIST))

ORIGINAL = (b"From: Ada <ada@harbour.example>\r\n"
            b"To: Me at Work <ME@work.example>, Bob <bob@example.net>\r\n"
            b"Cc: me+lists@example.org, me@example.org\r\n"
            b"Subject: plans\r\n"
            b"Message-ID: <m2@harbour.example>\r\n\r\nbody\r\n")


@pytest.fixture
def app(tmp_path: Path) -> Deskmail:
    dm = Deskmail(config.Paths(tmp_path / "config", tmp_path / "data"))
    dm.add_account(replace(ME, identities=()))
    return dm


def test_the_accounts_file_keeps_identities_and_signatures(tmp_path: Path) -> None:
    paths = config.Paths(tmp_path, tmp_path)
    config.save_accounts({"me": ME}, paths)
    assert config.load_accounts(paths) == {"me": ME}
    assert "[[accounts.me.identities]]" in paths.accounts_file.read_text()


identity_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@settings(max_examples=60, deadline=None)
@given(name=identity_text, signature=st.text(max_size=200))
def test_any_name_and_signature_survive_the_accounts_file(tmp_path_factory: pytest.TempPathFactory, name: str,
                                                          signature: str) -> None:
    paths = config.Paths(tmp_path_factory.mktemp("c"), tmp_path_factory.mktemp("d"))
    account = replace(ME, signature=signature, identities=(Identity("x@y.example", name, "", signature),))
    config.save_accounts({"me": account}, paths)
    assert config.load_accounts(paths)["me"] == account


def test_a_broken_identity_in_the_file_is_reported_with_its_line(tmp_path: Path) -> None:
    paths = config.Paths(tmp_path, tmp_path)
    config.save_accounts({"me": ME}, paths)
    text = paths.accounts_file.read_text().replace('address = "me@work.example"', 'address = "not an address"')
    paths.accounts_file.write_text(text)
    with pytest.raises(ConfigError, match=r"line \d+: identity 'not an address'"):
        config.load_accounts(paths)


edge = st.text(max_size=20).filter(str.strip)


@given(edge, st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x1b", "\x85", "\u2028"]), edge,
       st.sampled_from(["name", "address", "reply_to"]))
def test_a_line_break_in_a_header_field_is_refused(head: str, brk: str, tail: str, where: str) -> None:
    fields = {"address": "a@b.example", "name": "N", "reply_to": "", where: head + brk + tail}
    with pytest.raises(DeskmailError) as caught:
        make_identity(fields["address"], fields["name"], fields["reply_to"])
    assert caught.value.code == Code.BAD_IDENTITY


def test_a_line_break_in_the_address_is_refused() -> None:
    with pytest.raises(ValueError):
        Identity("a@b.example\r\nBcc: victim@x.example")
    with pytest.raises(ValueError):
        Account("x", "me@example.org", "Me\r\nBcc: victim@x.example", ME.incoming, ME.outgoing)


def test_the_facade_adds_edits_and_removes_identities_with_clear_errors(app: Deskmail) -> None:
    assert app.identities("me") == [ME.primary]
    app.add_identity("me", WORK)
    app.add_identity("me", LIST)
    assert [i.address for i in app.identities("me")] == ["me@example.org", "me@work.example", "me+lists@example.org"]
    for bad, code in ((lambda: app.add_identity("me", Identity("ME@WORK.example"))), Code.DUPLICATE_IDENTITY), \
            ((lambda: app.remove_identity("me", "me@example.org")), Code.PRIMARY_IDENTITY), \
            ((lambda: app.remove_identity("me", "who@example.org")), Code.NO_SUCH_IDENTITY), \
            ((lambda: app.update_identity("me", Identity("new@example.org"), "me@example.org")),
             Code.PRIMARY_IDENTITY), \
            ((lambda: app.update_identity("me", LIST, "me@work.example")), Code.DUPLICATE_IDENTITY):
        with pytest.raises(DeskmailError) as caught:
            bad()
        assert caught.value.code == code
    app.update_identity("me", replace(WORK, name="Work Me", signature="new sig"))
    app.update_identity("me", Identity("me@example.org", "Primary", "", "primary sig"))
    assert app.account("me").display_name == "Primary" and app.account("me").signature == "primary sig"
    assert app.remove_identity("me", "me+LISTS@example.org") == LIST
    assert app.identities("me")[1] == replace(WORK, name="Work Me", signature="new sig")
    assert app.sender_account("Work Me <me@work.example>").name == "me"


def test_a_new_draft_has_the_signature_below_the_place_to_write(app: Deskmail) -> None:
    app.add_identity("me", WORK)
    draft = app.new_draft("me", sender="me@work.example")
    assert draft.sender == "me@work.example" and draft.write_at == 0
    assert draft.body == f"\n\n{SEPARATOR}Me\nWork Ltd.\n"
    typed = replace(draft, body="Hello!" + draft.body)
    swapped = app.change_sender(typed, "me@example.org", "me")
    assert swapped.body == f"Hello!\n\n{SEPARATOR}-- but mine\nMe\n" and swapped.sender == "me@example.org"
    assert app.change_sender(swapped, "me@work.example").body == typed.body
    assert app.sign(Draft(to=("a@b.example",), body="text\n"), "me").body == f"text\n\n{SEPARATOR}-- but mine\nMe\n"


def test_reply_comes_from_the_identity_it_was_addressed_to_bottom_posted() -> None:
    d = reply_draft(ME, ORIGINAL, "the plans\n")
    assert d.sender == "me@work.example"
    quote_end = d.body.index("> the plans\n") + len("> the plans\n\n")
    assert d.write_at == quote_end and d.body[quote_end:] == f"\n\n{SEPARATOR}Me\nWork Ltd.\n"
    to_lists = ORIGINAL.replace(b"To: Me at Work <ME@work.example>, ", b"To: ")
    assert reply_draft(ME, to_lists, "x").sender == "me+lists@example.org"  # found in Cc
    delivered = b"Delivered-To: me+lists@example.org\r\nTo: list@lists.example\r\nFrom: a@b.example\r\n\r\n"
    assert reply_draft(ME, delivered, "x").sender == "me+lists@example.org"
    assert reply_draft(ME, b"From: a@b.example\r\nTo: someone@else.example\r\n\r\n", "x").sender == "me@example.org"
    assert reply_draft(ME, ORIGINAL, "x", sender="me@example.org").sender == "me@example.org"


def test_reply_all_leaves_out_every_identity_of_mine() -> None:
    d = reply_draft(ME, ORIGINAL, "x", reply_all=True)
    assert d.to == ("Ada <ada@harbour.example>",) and d.cc == ("Bob <bob@example.net>",)


def test_forward_puts_the_signature_above_the_forwarded_message() -> None:
    d = forward_draft(ME, ORIGINAL, "the text", sender="me@work.example")
    assert d.write_at == 0 and d.body.startswith(f"\n\n{SEPARATOR}Me\nWork Ltd.\n\n-------- Forwarded Message")
    back = change_sender(d, WORK, ME.primary)
    assert back.body.startswith(f"\n\n{SEPARATOR}-- but mine\nMe\n\n-------- Forwarded")


def test_the_message_goes_out_as_the_identity() -> None:
    msg, rcpt = build_message(ME, Draft(to=("a@b.example",), subject="s", body="b", sender="ME@work.example"))
    assert str(msg["From"]) == "Me at Work <me@work.example>" and str(msg["Reply-To"]) == "desk@work.example"
    assert str(msg["Message-ID"]).endswith("@work.example>") and rcpt == ["a@b.example"]
    with pytest.raises(DeskmailError) as caught:
        build_message(ME, Draft(to=("a@b.example",), sender="stranger@example.org"))
    assert caught.value.code == Code.NO_SUCH_IDENTITY
    write, _ref = draft_writer(ME, Draft(to=(), sender="me@work.example"))
    out = io.BytesIO()
    write(out)
    assert draft_from_message(out.getvalue()).sender == "me@work.example"


body_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80).map(lambda t: t.replace("\r", ""))
signatures = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).map(
    lambda t: t.replace("\r", "")).filter(lambda t: t.rstrip())


@settings(max_examples=300)
@given(typed=body_text, a=signatures, b=signatures | st.just(""), reply=st.booleans())
def test_changing_the_sender_never_touches_what_was_typed(typed: str, a: str, b: str, reply: bool) -> None:
    one, two = Identity("one@x.example", signature=a), Identity("two@x.example", signature=b)
    start = reply_draft(Account("n", "one@x.example", "", ME.incoming, ME.outgoing, signature=a,
                                identities=(two,)), ORIGINAL, "q") if reply else with_signature(Draft(to=()), one)
    written = replace(start, body=start.body[:start.write_at] + typed + start.body[start.write_at:])
    there = change_sender(written, one, two)
    assert there.body.startswith(written.body[:written.write_at] + typed)  # the words stay, in front
    assert there.write_at == written.write_at and there.sender == "two@x.example"
    assert (SEPARATOR + two.signature) in there.body if b.rstrip() else True
    back = change_sender(there, two, one)
    if b.rstrip():  # a signature taken out and put back may differ in the empty lines before it
        assert back.body == written.body
    assert back.body.startswith(written.body[:written.write_at] + typed.rstrip("\n"))


@settings(max_examples=300)
@given(name=st.text(max_size=40), reply_local=st.text(st.characters(min_codepoint=33, max_codepoint=126,
                                                                     exclude_characters='<>,@"()[]\\;:'),
                                                       min_size=1, max_size=10))
def test_whatever_an_identity_may_hold_gives_exactly_its_headers(name: str, reply_local: str) -> None:
    from email.parser import BytesParser
    from email.policy import default

    from deskmail.model import identity_problem
    from deskmail.outbox.compose import wire_bytes

    reply_to = f"{reply_local}@r.example"
    if identity_problem("who@x.example", name.strip(), reply_to):
        with pytest.raises(DeskmailError):
            make_identity("who@x.example", name, reply_to)
        return
    me = replace(ME, identities=(make_identity("who@x.example", name, reply_to),))
    msg, rcpt = build_message(me, Draft(to=("a@b.example",), subject="s", body="b", sender="who@x.example"))
    parsed = BytesParser(policy=default).parsebytes(wire_bytes(msg, ["who@x.example", *rcpt]))
    assert sorted(parsed.keys()) == sorted(["From", "Reply-To", "To", "Subject", "Date", "Message-ID", "User-Agent",
                                            "Content-Type", "Content-Transfer-Encoding", "MIME-Version"])
    assert parsed["From"].addresses[0].addr_spec == "who@x.example"
    # (the email package's folding may merge runs of spaces in a long name, or put one between two encoded
    # words: cosmetic, not a header of its own — every other character arrives as it was)
    assert "".join(parsed["From"].addresses[0].display_name.split()) == "".join(name.split())
