"""No-change sync inside a running process (what the desktop application and `sync --watch` do), against a
one-shot mbsync run, on the same Dovecot and the same generated mailbox, in one run (issue 11).

deskmail: one :class:`deskmail.app.Deskmail` in this process, a first sync, then ``--runs`` no-change
``Deskmail.sync()`` calls, each timed with ``perf_counter`` (connecting and logging in included: the
façade opens a connection per sync). mbsync: a first sync, then ``--runs`` no-change runs of the
whole process (``mbsync -a``, ``Patterns *``), timed as :mod:`sync_bench` times them. Medians; the goal
is deskmail ≤ 0.25 × mbsync. After the runs both local copies are checked (every Message-ID once).

    .venv/bin/python bench/inprocess_bench.py --messages 10000 --runs 15

Needs root (Dovecot) and Debian's isync and time packages. ``--deskmail-src DIR`` measures another
checkout's ``src/`` (put first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mailbox_gen  # sibling modules; bench/ is not a package
import sync_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--deskmail-src", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = parser.parse_args(argv)
    if args.deskmail_src is not None:
        sys.path.insert(0, str(args.deskmail_src.absolute()))

    from deskmail.app import Deskmail
    from deskmail.config import Paths
    from deskmail.sandbox import start_sandbox
    from deskmail.setup import ManualSettings

    root = Path(tempfile.mkdtemp(prefix="deskmail-inproc-", dir=args.workdir))
    os.chmod(root, 0o755)
    sb = start_sandbox(root / "sandbox")
    try:
        server = sync_bench.Server(host=sb.host, name="localhost", imaps_port=sb.imaps_port,
                                   pop3s_port=sb.pop3s_port, submission_port=sb.submission_port,
                                   ca_file=Path(sb.ca_file))
        users = {}
        for who in ("deskmail", "mbsync"):
            user = sb.create_user(f"inproc-{who}")
            sb.fill_maildir(user.email, mailbox_gen.messages(args.messages), flags="S")
            users[who] = user
        ids = {i.encode() for i in mailbox_gen.expected_message_ids(args.messages)}
        logs = root / "logs"
        logs.mkdir()

        mbsync = sync_bench.Mbsync(root / "mbsync", server, users["mbsync"].email, users["mbsync"].password)
        mbsync.setup()
        mbsync.mail_root.mkdir(exist_ok=True)
        first = sync_bench.run_measured(mbsync.command(), mbsync.env(), mbsync.workdir, 3600, logs / "mb-first.log")
        assert first.exit_code == 0, (logs / "mb-first.log").read_text()
        mb_times = []
        for run in range(args.runs):
            time.sleep(sync_bench.MIN_GAP)  # Maildir mtime resolution: see sync_bench.Tool.settle
            res = sync_bench.run_measured(mbsync.command(), mbsync.env(), mbsync.workdir, 600,
                                          logs / f"mb-nochange-{run}.log")
            assert res.exit_code == 0
            mb_times.append(res.wall_s)

        os.environ["DESKMAIL_INPROC_PW"] = users["deskmail"].password
        app = Deskmail(Paths(root / "dm" / "config", root / "dm" / "data"), keep_connections=True)
        app.add_account(app.build_account(ManualSettings(
            email=users["deskmail"].email, name="bench", in_host=sb.host, in_port=sb.imaps_port, in_security="ssl",
            smtp_host=sb.host, smtp_port=sb.submission_port, smtp_security="starttls", ca_file=str(sb.ca_file),
            password_env="DESKMAIL_INPROC_PW")))
        started = time.perf_counter()
        run_result = app.sync()
        dm_first = time.perf_counter() - started
        assert not run_result.failures, run_result.failures
        dm_times = []
        for _run in range(args.runs):
            time.sleep(sync_bench.MIN_GAP)
            started = time.perf_counter()
            run_result = app.sync()
            dm_times.append(time.perf_counter() - started)
            assert not run_result.failures and not any(r.new for r in run_result.results["bench"])

        for name, where in (("deskmail", root / "dm" / "data" / "mail"), ("mbsync", mbsync.mail_root)):
            check = sync_bench.check_copy(where, ids)
            assert check.ok, f"{name}: {check.describe()}"
        dm, mb = statistics.median(dm_times), statistics.median(mb_times)
        print(f"messages: {args.messages}, runs: {args.runs}")
        print(f"first sync: deskmail (in process) {dm_first:.2f} s, mbsync {first.wall_s:.2f} s")
        print(f"no-change: deskmail in process median {dm * 1000:.1f} ms (min {min(dm_times) * 1000:.1f}, "
              f"max {max(dm_times) * 1000:.1f}); mbsync one-shot median {mb * 1000:.1f} ms "
              f"(min {min(mb_times) * 1000:.1f}, max {max(mb_times) * 1000:.1f})")
        print(f"ratio deskmail in process / mbsync one-shot: {dm / mb:.2f} (goal <= 0.25)")
        return 0 if dm / mb <= 0.25 else 1
    finally:
        sb.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
