"""Sending: deskmail beside msmtp on the same local submission server (STARTTLS + AUTH), in one run (issue 14).

Two figures, medians of ``--runs``:

* one message, one process: ``deskmail send`` against ``msmtp -t`` (how mutt users send);
* ``--messages`` messages: msmtp once per message against deskmail's outbox (``deskmail send --queue`` for
  each, not timed, then one timed ``deskmail outbox flush``: one connection, one TLS handshake, one AUTH).
  A build without the outbox (``--deskmail-src`` of an older checkout) sends them one process each.

Goals (issue 14): the flush takes at most a third of msmtp's time; one ``deskmail send`` no longer than
one msmtp run. deskmail's account is IMAP, so its figures include the copy saved in Sent (msmtp keeps none);
``--pop3`` leaves that out. Recipients are outside the sandbox (written to its ``outbound/``) for both.

    .venv/bin/python bench/send_bench.py --messages 100 --runs 5

Needs root (the sandbox's Dovecot) and ``apt-get install -y msmtp``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict[str, str], stdin: bytes | None = None) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, input=stdin, capture_output=True, timeout=600, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}… failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pop3", action="store_true", help="deskmail account over POP3 (no copy in Sent)")
    parser.add_argument("--deskmail-src", type=Path, default=None, help="import deskmail from DIR/src")
    args = parser.parse_args(argv)
    msmtp = shutil.which("msmtp")
    if msmtp is None:
        raise SystemExit("msmtp is missing: apt-get install -y msmtp")
    from deskmail.sandbox import start_sandbox

    root = Path(tempfile.mkdtemp(prefix="deskmail-sendbench-"))
    os.chmod(root, 0o755)
    sb = start_sandbox(root / "sandbox")
    try:
        user = sb.create_user("sendbench")
        env = {**os.environ, "DESKMAIL_HOME": str(root / "home"), "DM_PW": user.password}
        if args.deskmail_src is not None:
            env["PYTHONPATH"] = str((args.deskmail_src / "src").absolute())
        deskmail = [sys.executable, "-m", "deskmail"]
        # Bytecode for the checkout measured, as an installed program has it: with PYTHONDONTWRITEBYTECODE set
        # (as in the team's shells) every run would otherwise compile deskmail's modules anew (~40 ms of CPU).
        where = subprocess.run([sys.executable, "-c", "import deskmail, os; print(os.path.dirname(deskmail.__file__))"],
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run([sys.executable, "-m", "compileall", "-q", where], env=env, check=True, capture_output=True)
        proto = (["--protocol", "pop3", "--pop-host", sb.host, "--pop-port", str(sb.pop3s_port), "--pop-security",
                  "ssl"] if args.pop3 else
                 ["--imap-host", sb.host, "--imap-port", str(sb.imaps_port), "--imap-security", "ssl"])
        subprocess.run([*deskmail, "account", "add", "--email", user.email, "--name", "bench", *proto,
                        "--smtp-host", sb.host, "--smtp-port", str(sb.submission_port), "--smtp-security",
                        "starttls", "--ca-file", str(sb.ca_file), "--password-env", "DM_PW", "--no-verify"],
                       env=env, check=True, capture_output=True)
        conf = root / "msmtprc"
        conf.write_text(f"account default\nhost {sb.host}\nport {sb.submission_port}\ntls on\ntls_starttls on\n"
                        f"tls_trust_file {sb.ca_file}\nauth on\nuser {user.email}\npasswordeval echo $DM_PW\n"
                        f"from {user.email}\n")
        conf.chmod(0o600)
        to = "someone@bench.example"

        def message(n: int) -> bytes:
            return (f"From: {user.email}\r\nTo: {to}\r\nSubject: bench {n}\r\nMessage-ID: <bench{n}.{time.time()}"
                    f"@bench.example>\r\n\r\nbody {n}\r\n").encode()

        def one_msmtp(n: int) -> float:
            return timed([msmtp, "-C", str(conf), "-t"], env, message(n))

        def one_deskmail(n: int, *extra: str) -> float:
            return timed([*deskmail, "send", "--to", to, "--subject", f"bench {n}", "--body", f"body {n}", *extra],
                         env)

        has_queue = b"--queue" in subprocess.run([*deskmail, "send", "--help"], env=env, capture_output=True,
                                                 check=False).stdout
        one_msmtp(-1)
        one_deskmail(-1)  # warm both (page cache, sandbox)
        single_m = [one_msmtp(i) for i in range(args.runs)]
        single_d = [one_deskmail(i) for i in range(args.runs)]
        batch_m, batch_d = [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            for i in range(args.messages):
                one_msmtp(i)
            batch_m.append(time.perf_counter() - started)
            if has_queue:
                for i in range(args.messages):
                    one_deskmail(i, "--queue")
                batch_d.append(timed([*deskmail, "outbox", "flush"], env))
            else:
                started = time.perf_counter()
                for i in range(args.messages):
                    one_deskmail(i)
                batch_d.append(time.perf_counter() - started)
        sm, sd = statistics.median(single_m), statistics.median(single_d)
        bm, bd = statistics.median(batch_m), statistics.median(batch_d)
        how = "outbox flush" if has_queue else "one process each"
        print(f"one message:  msmtp {sm * 1000:.0f} ms, deskmail send {sd * 1000:.0f} ms ({sd / sm:.2f} x)")
        print(f"{args.messages} messages: msmtp {bm:.2f} s, deskmail ({how}) {bd:.2f} s ({bd / bm:.2f} x)")
        print(f"runs: {args.runs}; deskmail account: {'POP3' if args.pop3 else 'IMAP (copy in Sent included)'}")
    finally:
        sb.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
