"""Start to inbox painted, side by side: deskmail against Claws Mail, on the same IMAP account, the same
mail and the same X server (issue 15).

    apt-get install -y claws-mail xvfb; .venv/bin/pip install python-xlib
    .venv/bin/python bench/gui_compare.py --messages 2000 --runs 5

One Xvfb (1280x800) for every run. Each program is prepared once (deskmail: a first sync; Claws Mail: an
account, its folder list and a first start that opens the inbox and caches its headers), then started
``--runs`` times. Timing, the same for both and from outside: the parent notes the time, starts the
program, and reads the screen's pixels (XGetImage, every 5 ms) until the message list's area shows what
it shows once the program has settled (taken 6 s after a warm-up start). That moment is "inbox painted".
Resident memory: the program's processes summed (VmRSS), 6 s after the start. Thunderbird is not measured
here (its password store needs NSS tooling this harness does not drive); see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mailbox_gen  # sibling module; bench/ is not a package

DISPLAY = ":87"
SETTLE = 6.0


def grab(display: object, box: tuple[int, int, int, int]) -> bytes:
    x, y, w, h = box
    root = display.screen().root  # type: ignore[attr-defined]
    return bytes(root.get_image(x, y, w, h, 2, 0xFFFFFFFF).data)  # ZPixmap


def tree_rss_mb(pid: int) -> float:
    total = 0
    pids = [pid]
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    pids += [int(p) for p in out]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Program:
    name = ""
    box = (0, 0, 0, 0)  # where its message list is on the screen

    def start(self) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Deskmail(Program):
    name = "deskmail"

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(Path(sys.executable).with_name("deskmail-gui"))],
                                env={**self.env, "DESKMAIL_HOME": str(self.home)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Claws(Program):
    name = "Claws Mail"

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config, self.env = config, env

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["claws-mail", "--alternate-config-dir", str(self.config)], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        subprocess.run(["claws-mail", "--alternate-config-dir", str(self.config), "--exit"], env=self.env,
                       check=False, timeout=20, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def claws_config(directory: Path, email: str, password: str, host: str, port: int) -> None:
    directory.mkdir(parents=True)
    (directory / "accountrc").write_text(f"""[Account: 1]
account_name={email}
is_default=1
name=Bench
address={email}
protocol=3
receive_server={host}
smtp_server={host}
user_id={email}
password={password}
set_imapport=1
imap_port={port}
ssl_imap=0
imap_auth_method=0
""")  # plain IMAP on loopback (Claws would ask about the sandbox's private CA; deskmail uses TLS)
    (directory / "clawsrc").write_text(f"""[Common]
check_on_startup=0
show_splash=0
confirm_on_exit=0
goto_last_folder_on_startup=1
last_opened_folder=#imap/{email}/INBOX
""")
    attrs = 'threaded="0" sort_key="date" sort_type="descending"'
    items = "".join(f'<folderitem type="{t}" name="{n}" path="{n}" {attrs}/>'
                    for t, n in (("inbox", "INBOX"), ("outbox", "Sent"), ("draft", "Drafts"), ("queue", "Queue"),
                                 ("trash", "Trash")))
    (directory / "folderlist.xml").write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<folderlist><folder '
                                              f'type="imap" name="{email}" account_id="1">{items}</folder>'
                                              f'</folderlist>\n')


def measure(program: Program, runs: int, display: object) -> dict[str, object]:
    # Warm-up: the start that fills caches, and the settled picture of the list's area.
    # Settled: the area unchanged for 4 s (a first start of Claws Mail downloads every header first).
    proc = program.start()
    started, last, since = time.monotonic(), b"", time.monotonic()
    while time.monotonic() - started < 600:
        time.sleep(0.5)
        now = grab(display, program.box)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 4 and time.monotonic() - started > SETTLE:
            break
    reference = last
    program.stop(proc)
    # The area must show the list's rows (text: many colours), not the empty screen or a plain background,
    # or "equal to the settled picture" would be true from the first instant.
    pixels = {reference[i:i + 4] for i in range(0, len(reference), 4)}
    if len(pixels) < 20:
        raise SystemExit(f"{program.name}: the measured area {program.box} shows no message list "
                         f"({len(pixels)} colours)")
    times, rss = [], []
    for _ in range(runs):
        time.sleep(1)
        t0 = time.monotonic()
        proc = program.start()
        painted = None
        while time.monotonic() - t0 < 30:
            if grab(display, program.box) == reference:
                painted = time.monotonic() - t0
                break
            time.sleep(0.005)
        time.sleep(max(0.0, SETTLE - (time.monotonic() - t0)))  # (memory: once the start-up work is over)
        rss.append(tree_rss_mb(proc.pid))
        program.stop(proc)
        if painted is None:
            raise SystemExit(f"{program.name}: the list never showed its settled picture")
        times.append(painted)
    return {"painted_s": times, "median_s": statistics.median(times), "rss_mb": rss,
            "rss_median_mb": statistics.median(rss)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if shutil.which("claws-mail") is None or shutil.which("Xvfb") is None:
        raise SystemExit("needs: apt-get install -y claws-mail xvfb")
    from Xlib import display as xdisplay

    from deskmail.app import Deskmail as Facade
    from deskmail.config import Paths
    from deskmail.sandbox import start_sandbox
    from deskmail.setup import ManualSettings

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "src")],
                   check=False, stdout=subprocess.DEVNULL)
    root = Path(tempfile.mkdtemp(prefix="deskmail-guicmp-"))
    os.chmod(root, 0o755)
    xvfb = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runtime = tempfile.mkdtemp(prefix="guicmp-rt-")
    env = {**os.environ, "DISPLAY": DISPLAY, "QT_QPA_PLATFORM": "xcb", "XDG_RUNTIME_DIR": runtime,
           "HOME": str(root)}
    sb = start_sandbox(root / "sandbox")
    results: dict[str, object] = {"messages": args.messages}
    try:
        time.sleep(1)
        display = xdisplay.Display(DISPLAY)
        user = sb.create_user("guicmp")
        sb.fill_maildir(user.email, mailbox_gen.messages(args.messages))
        sb.doveadm("mailbox", "create", "-u", user.email, "Queue")
        (root / "pw").write_text(user.password)
        home = root / "deskmail"
        app = Facade(Paths(home / "config", home / "data"))
        app.add_account(app.build_account(ManualSettings(
            email=user.email, name="bench", in_host=sb.host, in_port=sb.imaps_port, in_security="ssl",
            smtp_host=sb.host, smtp_port=sb.submission_port, smtp_security="starttls", ca_file=str(sb.ca_file),
            password_command=f"cat {root / 'pw'}")))
        assert not app.sync().failures
        app.close()
        desk = Deskmail(home, env)
        desk.box = (240, 90, 600, 120)  # the list's first rows at the window's remembered default place
        claws = Claws(root / "claws", env)
        claws_config(root / "claws", user.email, user.password, sb.host, sb.imap_port)
        claws.box = (400, 200, 400, 60)
        for program in (claws, desk):
            r = measure(program, args.runs, display)
            results[program.name] = r
            print(f"{program.name}: start → inbox painted, median {r['median_s']:.3f} s over {args.runs} "
                  f"({', '.join(f'{t:.3f}' for t in r['painted_s'])}); RSS {r['rss_median_mb']:.1f} MB", flush=True)
        ratio = results["deskmail"]["median_s"] / results["Claws Mail"]["median_s"]  # type: ignore[index]
        print(f"deskmail / Claws Mail = {ratio:.2f}", flush=True)
        results["ratio"] = ratio
    finally:
        sb.stop()
        xvfb.terminate()
        xvfb.wait()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
