"""The IMAP folder planner (deskmail.sync.plan) without servers: each situation of the sync's theory of
operation as a table row, and properties over wild inputs (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskmail.sync.plan import (
    MASS_UPLOAD,
    Action,
    Checkpoint,
    DeleteThere,
    Download,
    DropOp,
    ExpungeHere,
    FlagChange,
    ForgetMissing,
    HoldUploads,
    JournalOp,
    LocalMessage,
    LocalState,
    LogConflicts,
    MoveThere,
    PullFlags,
    PushFlags,
    Rekey,
    ResumeUploads,
    ServerState,
    UnkeptKeywords,
    UploadThere,
    merge_flags,
    plan_folder,
    remerge,
)

UV = 7
S, F, A = "\\Seen", "\\Flagged", "\\Answered"


def fs(*flags: str) -> frozenset[str]:
    return frozenset(flags)


def msg(flags: frozenset[str] = fs(), synced: frozenset[str] | None = None, *, missing: bool = False,
        uv: int = UV) -> LocalMessage:
    return LocalMessage(uv, flags, flags if synced is None else synced, missing)


def local(messages: dict[str, LocalMessage] | None = None, **kw: Any) -> LocalState:
    kw.setdefault("clean", False)
    return LocalState(kw.pop("uidvalidity", UV), kw.pop("uidnext", 10), kw.pop("highestmodseq", 100),
                      messages or {}, **kw)


def server(mode: str = "qresync", flags: dict[str, frozenset[str]] | None = None, **kw: Any) -> ServerState:
    return ServerState(kw.pop("uidvalidity", UV), kw.pop("uidnext", 10), kw.pop("exists", 0),
                       kw.pop("highestmodseq", 101), mode, flags or {}, **kw)  # type: ignore[arg-type]


def kinds(actions: list[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


DELETE = JournalOp(1, "delete", UV, "3")
MOVE = JournalOp(2, "move", UV, "4", "Archive")

# (situation, local, server, expected action kinds, a check on the actions)
CASES: list[tuple[str, LocalState, ServerState, list[str], Any]] = [
    ("nothing changed on either side: only the modseq moves, quietly",
     local({}, clean=True), server(), ["Checkpoint"],
     lambda a: a[-1].quiet and a[-1].highestmodseq == 101),
    ("first sync: everything from UID 1 up, nothing listed",
     local(uidvalidity=0, uidnext=0, highestmodseq=0), server("first", uidnext=40), ["Download", "Checkpoint"],
     lambda a: a[0] == Download((), 0) and not a[1].quiet),
    ("new mail (QRESYNC): the UIDs above the highest held",
     local({"1": msg()}, clean=True, known_max=9), server(uidnext=12), ["Download", "Checkpoint"],
     lambda a: a[0].above == 9 and a[0].uids == ()),
    ("a flag set on the server is taken here",
     local({"1": msg()}), server(flags={"1": fs(S)}), ["PullFlags", "Checkpoint"],
     lambda a: a[0].changes == (FlagChange("1", fs(S)),) and a[0].synced == (fs(S),)),
    ("a flag set here is sent",
     local({"1": msg(fs(F), fs())}), server(), ["PushFlags", "Checkpoint"],
     lambda a: a[0] == PushFlags(fs(F), (FlagChange("1", fs(F)),))),
    ("changes on both sides are united, and logged",
     local({"1": msg(fs(F), fs())}), server(flags={"1": fs(S)}), ["LogConflicts", "PushFlags", "Checkpoint"],
     lambda a: a[1].flags == fs(S, F)),
    ("a removal here and an addition there both apply",
     local({"1": msg(fs(), fs(S))}), server(flags={"1": fs(S, F)}), ["LogConflicts", "PushFlags", "Checkpoint"],
     lambda a: a[1].flags == fs(F)),
    ("expunged on the server (VANISHED): removed here; a flag change here is dropped",
     local({"1": msg(fs(S), fs()), "2": msg()}), server(vanished=frozenset({"1", "2"})),
     ["ExpungeHere", "Checkpoint"], lambda a: a[0] == ExpungeHere(("1", "2"), ("1",))),
    ("expunged on the server (full listing): what the listing lacks",
     local({"1": msg(), "2": msg(fs(S))}), server("listing", {"2": fs(S)}), ["ExpungeHere", "Checkpoint"],
     lambda a: a[0].uids == ("1",)),
    ("a file that vanished here is downloaded again, never deleted there",
     local({"1": msg(missing=True), "2": msg()}), server("listing", {"1": fs(), "2": fs()}),
     ["Download", "Checkpoint"], lambda a: a[0] == Download((1,), None, ("1",))),
    ("a vanished file the server also lost is forgotten",
     local({"1": msg(missing=True)}), server(vanished=frozenset({"1"})), ["ForgetMissing", "Checkpoint"],
     lambda a: a[0] == ForgetMissing(("1",))),
    ("UIDVALIDITY changed: re-match first, nothing else decided",
     local({"1": msg(fs(S), fs())}, ops=(DELETE,)), server("unread", uidvalidity=8), ["Rekey"],
     lambda a: a[0] == Rekey(UV, 8)),
    ("the user's delete and move go first, in journal order; their UIDs get nothing else",
     local({"3": msg(fs(S), fs()), "4": msg(missing=True)}, ops=(DELETE, MOVE)),
     server("listing", {"3": fs(F), "4": fs()}), ["DeleteThere", "MoveThere", "Checkpoint"],
     lambda a: a[0] == DeleteThere(DELETE) and a[1] == MoveThere(MOVE)),
    ("a journaled op from before a UIDVALIDITY change is dropped, never sent",
     local({}, ops=(JournalOp(1, "delete", UV - 1, "3"),)), server(), ["DropOp", "Checkpoint"],
     lambda a: isinstance(a[0], DropOp)),
    ("CONDSTORE: nothing happened on the server, nothing here",
     local({"1": msg()}, clean=True), server("unchanged"), ["Checkpoint"], lambda a: a[0].quiet),
    ("files saved here are uploaded after the download",
     local({}, unknown=("x:2,S",), known_max=9), server(uidnext=11), ["Download", "UploadThere", "Checkpoint"],
     lambda a: a[1] == UploadThere(("x:2,S",))),
    ("too many files saved here wait for a confirmation; the folder is looked at again",
     local({}, unknown=tuple(f"f{i}" for i in range(MASS_UPLOAD + 1))), server(), ["HoldUploads", "Checkpoint"],
     lambda a: a[-1].rescan),
    ("... unless the user confirmed",
     local({}, unknown=tuple(f"f{i}" for i in range(MASS_UPLOAD + 1)), upload_confirmed=True), server(),
     ["UploadThere", "Checkpoint"], lambda a: a[0].confirmed and len(a[0].names) == MASS_UPLOAD + 1),
    ("an interrupted upload is looked for before the download, appended again after it",
     local({}, unknown=("j:2,", "n:2,"), appends=frozenset({"j"}), known_max=9), server(uidnext=11),
     ["ResumeUploads", "Download", "UploadThere", "Checkpoint"],
     lambda a: a[0] == ResumeUploads(("j:2,",)) and a[2].names == ("n:2,",)),
    ("a keyword the server keeps (PERMANENTFLAGS \\*) is sent",
     local({"1": msg(fs("$Label1"), fs())}), server(permanent=(S, F, "\\*")), ["PushFlags", "Checkpoint"],
     lambda a: a[0].flags == fs("$Label1")),
    ("a keyword the server does not keep stays here, not agreed, and is named",
     local({"1": msg(fs(S, "sparkly"), fs())}), server(permanent=(S, F, A)),
     ["PushFlags", "UnkeptKeywords", "Checkpoint"],
     lambda a: a[0] == PushFlags(fs(S), (FlagChange("1", fs(S, "sparkly")),)) and a[1].keywords == ("sparkly",)),
    ("only an unkept keyword changed: nothing to send, still named",
     local({"1": msg(fs("sparkly"), fs())}), server(permanent=(S,)), ["UnkeptKeywords", "Checkpoint"],
     lambda a: True),
]


@pytest.mark.parametrize(("local_state", "server_state", "expected", "check"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_situations(local_state: LocalState, server_state: ServerState, expected: list[str], check: Any) -> None:
    actions = plan_folder(local_state, server_state)
    assert kinds(actions) == expected
    assert check(actions), actions
    assert all(a.describe() for a in actions)


# --- properties --------------------------------------------------------------------------------------

FLAGS = st.frozensets(st.sampled_from([S, F, A, "\\Draft", "$Label1", "sparkly"]), max_size=4)


@given(FLAGS, FLAGS, FLAGS)
def test_merge_is_idempotent_and_symmetric(base: frozenset[str], mine: frozenset[str],
                                           theirs: frozenset[str]) -> None:
    merged = merge_flags(base, mine, theirs)
    assert merge_flags(base, merged, merged) == merged
    assert merge_flags(merged, merged, merged) == merged
    assert merge_flags(base, theirs, mine) == merged
    assert merge_flags(base, mine, base) == mine and merge_flags(base, base, theirs) == theirs


@st.composite
def folders(draw: st.DrawFn) -> tuple[LocalState, ServerState]:
    uids = draw(st.lists(st.integers(1, 60), unique=True, max_size=25))
    messages = {
        str(u): LocalMessage(draw(st.sampled_from([UV, UV, UV, UV - 1])), draw(FLAGS), draw(FLAGS), draw(st.booleans()))
        for u in uids
    }
    ops = tuple(
        JournalOp(i, draw(st.sampled_from(["delete", "move"])), draw(st.sampled_from([UV, UV - 1])), str(u),
                  "Archive")
        for i, u in enumerate(draw(st.lists(st.sampled_from(uids), unique=True, max_size=3)) if uids else [])
    )
    mode = draw(st.sampled_from(["qresync", "listing", "unchanged", "first"]))
    on_server = draw(st.lists(st.integers(1, 80), unique=True, max_size=30))
    if mode == "listing":
        flags = {str(u): draw(FLAGS) for u in on_server}
        vanished: frozenset[str] = frozenset()
    elif mode == "qresync":
        flags = {str(u): draw(FLAGS) for u in on_server[:10]}
        gone = draw(st.lists(st.sampled_from(uids), max_size=5)) if uids else []
        vanished = frozenset(str(u) for u in gone) - set(flags)
    else:
        flags, vanished = {}, frozenset()
    permanent = draw(st.sampled_from([None, (S, F, A, "\\Draft", "\\*"), (S, F, A, "\\Draft")]))
    known = max((u for u in uids if messages[str(u)].uidvalidity == UV), default=0)
    state = LocalState(UV, draw(st.integers(0, 70)), 5, messages, clean=draw(st.booleans()), known_max=known,
                       ops=ops, unknown=tuple(draw(st.lists(st.sampled_from(["a:2,", "b:2,S", "c:2,"]), unique=True))))
    return state, ServerState(UV, draw(st.integers(1, 90)), len(on_server), 9, mode, flags, vanished,
                              permanent)


@settings(max_examples=400)
@given(folders())
def test_planned_flags_converge(case: tuple[LocalState, ServerState]) -> None:
    """Applying the plan's changes here and there leaves equal flags (less the keywords the server does
    not keep) on every message both sides still hold."""
    state, srv = case
    actions = plan_folder(state, srv)
    here = {uid: m.flags for uid, m in state.messages.items()}
    there = dict(srv.flags) if srv.mode in ("qresync", "listing") else {}
    for a in actions:
        if isinstance(a, PullFlags):
            here.update((c.uid, c.flags) for c in a.changes)
        elif isinstance(a, PushFlags):
            here.update((c.uid, c.flags) for c in a.changes)
            there.update((c.uid, a.flags) for c in a.changes)
    unkept = set().union(*(a.keywords for a in actions if isinstance(a, UnkeptKeywords)))
    gone = {u for a in actions if isinstance(a, ExpungeHere | ForgetMissing) for u in a.uids}
    ops = {o.uid for o in state.ops}
    for uid, m in state.messages.items():
        if uid in gone or uid in ops or m.missing or m.uidvalidity != UV:
            continue
        theirs = there.get(uid, m.synced)  # not reported by the server: unchanged since the last sync
        if srv.mode == "listing" and uid not in there:
            continue
        assert here[uid] - unkept == theirs - unkept, (uid, m, actions)


@settings(max_examples=400)
@given(folders())
def test_only_journaled_user_ops_delete_on_the_server(case: tuple[LocalState, ServerState]) -> None:
    state, srv = case
    actions = plan_folder(state, srv)
    sent = [a.op for a in actions if isinstance(a, DeleteThere | MoveThere)]
    assert all(op in state.ops and op.uidvalidity == srv.uidvalidity for op in sent)
    assert len(sent) == len({op.id for op in sent})
    # Without journaled ops, nothing (a vanished file included) ever removes anything from the server.
    no_ops = plan_folder(LocalState(state.uidvalidity, state.uidnext, state.highestmodseq, state.messages,
                                    clean=state.clean, known_max=state.known_max), srv)
    assert not any(isinstance(a, DeleteThere | MoveThere) for a in no_ops)


@settings(max_examples=400)
@given(folders())
def test_a_vanished_file_is_never_pushed_or_deleted_there(case: tuple[LocalState, ServerState]) -> None:
    state, srv = case
    missing = {uid for uid, m in state.messages.items() if m.missing}
    for a in plan_folder(state, srv):
        if isinstance(a, PushFlags | PullFlags | LogConflicts):
            assert not missing & {c.uid for c in a.changes}
        if isinstance(a, Download):
            assert set(a.refetch) <= missing


@settings(max_examples=400)
@given(folders())
def test_a_uid_is_never_downloaded_twice(case: tuple[LocalState, ServerState]) -> None:
    state, srv = case
    actions = plan_folder(state, srv)
    downloads = [a for a in actions if isinstance(a, Download)]
    assert len(downloads) <= 1
    held = {int(u) for u, m in state.messages.items() if m.uidvalidity == UV and not m.missing}
    for d in downloads:
        assert len(set(d.uids)) == len(d.uids)
        assert not held & set(d.uids)
        if d.above is not None:
            assert all(u <= d.above for u in d.uids)  # the range above covers the rest, once
            assert not {u for u in held if u > d.above}
    assert isinstance(actions[-1], Checkpoint | Rekey)


@given(folders())
def test_planning_is_deterministic_and_a_second_plan_after_agreement_is_quiet(
        case: tuple[LocalState, ServerState]) -> None:
    state, srv = case
    assert plan_folder(state, srv) == plan_folder(state, srv)
    # Everything agreed and nothing reported: no action but the checkpoint.
    agreed = {u: LocalMessage(UV, m.synced, m.synced) for u, m in state.messages.items() if m.uidvalidity == UV}
    quiet = plan_folder(LocalState(UV, 10, 5, agreed, clean=True), ServerState(UV, 10, 0, 9, "qresync"))
    assert quiet == [Checkpoint(UV, 10, 9, quiet=True)]


def test_held_uploads_are_named_in_the_plan() -> None:
    actions = plan_folder(local({}, unknown=tuple(f"f{i}" for i in range(60))), server())
    assert actions[0] == HoldUploads(60)
    assert "wait for a confirmation" in actions[0].describe()


def test_conflicts_carry_the_merged_flags() -> None:
    actions = plan_folder(local({"5": msg(fs(F), fs(A))}), server(flags={"5": fs(A, S)}))
    assert actions[0] == LogConflicts((FlagChange("5", fs(F, S)),))


def test_pushes_carry_the_server_flags_they_assume_so_only_the_difference_is_sent() -> None:
    """Same target, different server starting points: two pushes, each with its own +FLAGS/-FLAGS."""
    actions = plan_folder(local({"1": msg(fs(S), fs()), "2": msg(fs(S), fs(F, S))}),
                          server(flags={"2": fs(F, S)}))
    pushes = [a for a in actions if isinstance(a, PushFlags)]
    assert [(p.flags, p.theirs, p.add, p.remove) for p in pushes] == [
        (fs(S), fs(), fs(S), fs()), (fs(S), fs(F, S), fs(), fs(F))]


@given(FLAGS, FLAGS, FLAGS)
def test_a_remerge_after_modified_loses_neither_sides_change(assumed: frozenset[str], mine: frozenset[str],
                                                             now: frozenset[str]) -> None:
    """``mine``: the flags here (our change on top of what the plan saw, ``assumed``); ``now``: what the
    server has after another client's change. Every addition and removal of either side survives."""
    merged, send = remerge(assumed, mine, now, None)
    assert (mine - assumed) <= merged and (now - assumed) <= merged  # additions kept
    assert not (assumed - mine) & merged and not (assumed - now) & merged  # removals kept
    assert send == merged
    kept_only, sent = remerge(assumed, mine, now, (S, F, A, "\\Draft"))
    assert kept_only == merged and sent == {f for f in merged if f.startswith("\\")}
