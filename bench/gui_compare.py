"""Start to inbox painted, side by side: deskmail against Claws Mail and Thunderbird, on the same IMAP account,
the same mail and the same X server (issue 15).

    apt-get install -y --no-install-recommends claws-mail thunderbird libnss3-tools xvfb imagemagick
    .venv/bin/pip install python-xlib
    .venv/bin/python bench/gui_compare.py --messages 2000 --runs 5

The script starts its own Xvfb (1280x800, display :87; no xvfb-run) and uses it for every run, and the
sandbox's Dovecot on loopback. Each program is prepared once, then started ``--runs`` times:

- deskmail: the account added through the façade and a first sync.
- Claws Mail: an account, its folder list and a first start that opens the inbox and caches its headers.
- Thunderbird: a scripted profile (:func:`thunderbird_profile`: the account in user.js, the sandbox's CA
  trusted in the profile's cert9.db, the password in logins.json encrypted with the profile's key4.db through
  NSS, so no dialog of any kind appears; no start page, telemetry or update checks; gloda and offline body
  downloads off) and preparation starts that fetch the inbox's headers into INBOX.msf (:meth:`Thunderbird.
  prepare`). It is started with ``--no-remote --profile DIR`` and quit by closing its window, as a user does.

Timing, the same for all and from outside: the parent notes the time, starts the program, and reads the
screen's pixels (XGetImage, every 5 ms) until the message list's area shows what it shows once the program
has settled (taken after a warm-up start, the area unchanged for 4 s and at least 6 s after the start). That
moment is "inbox painted". Resident memory: VmRSS of the program's process and all its descendants (for
Thunderbird, its content processes), 6 s after the start. ``--screenshots DIR`` saves each settled screen.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
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
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mailbox_gen  # sibling module; bench/ is not a package

DISPLAY = ":87"
SETTLE = 6.0


def grab(display: object, box: tuple[int, int, int, int]) -> bytes:
    x, y, w, h = box
    root = display.screen().root  # type: ignore[attr-defined]
    return bytes(root.get_image(x, y, w, h, 2, 0xFFFFFFFF).data)  # ZPixmap


def tree_rss_mb(pid: int) -> float:
    """VmRSS of the process and all its descendants (Thunderbird's content processes, ...)."""
    total = 0
    pids, todo = [], [pid]
    while todo:  # children of children too
        p = todo.pop()
        pids.append(p)
        out = subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True, check=False).stdout
        todo += [int(c) for c in out.split()]
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

    def prepare(self) -> None:
        """Anything a first start must do before the timed starts (beyond the warm-up start)."""

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


class Thunderbird(Program):
    """Thunderbird on a scripted profile (see :func:`thunderbird_profile`)."""

    name = "Thunderbird"

    def __init__(self, profile: Path, env: dict[str, str]) -> None:
        self.profile = profile
        # No crash reporter, and no safe-mode question should a run end uncleanly.
        self.env = {**env, "MOZ_CRASHREPORTER_DISABLE": "1", "MOZ_DISABLE_AUTO_SAFE_MODE": "1"}

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["thunderbird", "--no-remote", "--profile", str(self.profile)], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def prepare(self) -> None:
        # The first start fetches the inbox's headers into ImapMail/<host>/INBOX.msf, which Thunderbird writes
        # when it quits. Start, wait until the list's area has been still for 10 s, quit; again until a start
        # adds almost nothing to INBOX.msf (at 50,000 messages one start may quit before the last headers).
        from Xlib import display as xdisplay

        display = xdisplay.Display(DISPLAY)
        size = 0
        for _ in range(6):
            proc = self.start()
            started, last, since = time.monotonic(), b"", time.monotonic()
            while time.monotonic() - started < 1800:
                time.sleep(1)
                now = grab(display, self.box)
                if now != last:
                    last, since = now, time.monotonic()
                elif time.monotonic() - since > 10 and time.monotonic() - started > 20:
                    break
            self.stop(proc)
            msf = list(self.profile.glob("ImapMail/*/INBOX.msf"))
            before, size = size, msf[0].stat().st_size if msf else 0
            print(f"Thunderbird: preparation start, {time.monotonic() - started:.0f} s, INBOX.msf {size} bytes",
                  flush=True)
            if size > 0 and size - before < size * 0.02:
                break
        display.close()

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        # As a user quits: closing the last window quits Thunderbird, which then writes the folder databases
        # (INBOX.msf) and the session. SIGTERM does neither.
        close_windows(proc.pid)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        time.sleep(1)  # its content processes exit after the parent


def close_windows(pid: int) -> None:
    """Ask each mapped top-level window of the process to close (WM_DELETE_WINDOW, what a window manager's
    close button sends; there is no window manager here)."""
    from Xlib import X, protocol
    from Xlib import display as xdisplay

    d = xdisplay.Display(DISPLAY)
    try:
        wm_protocols, wm_delete = d.intern_atom("WM_PROTOCOLS"), d.intern_atom("WM_DELETE_WINDOW")
        wm_pid = d.intern_atom("_NET_WM_PID")
        for window in d.screen().root.query_tree().children:
            owner = window.get_full_property(wm_pid, X.AnyPropertyType)
            if owner is None or owner.value[0] != pid or window.get_attributes().map_state != X.IsViewable:
                continue
            window.send_event(protocol.event.ClientMessage(
                window=window, client_type=wm_protocols, data=(32, [wm_delete, X.CurrentTime, 0, 0, 0])))
        d.flush()
    finally:
        d.close()


class _SECItem(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint), ("data", ctypes.POINTER(ctypes.c_ubyte)), ("len", ctypes.c_uint)]


def nss_encrypt(profile: Path, values: list[str]) -> list[str]:
    """Encrypt like Thunderbird's login manager does (NSS's secret decoder ring, the key in the profile's
    key4.db, no primary password): base64 of ``PK11SDR_Encrypt``. Debian's libnss3 through ctypes."""
    nss = ctypes.CDLL("libnss3.so")
    nss.PK11_GetInternalKeySlot.restype = ctypes.c_void_p
    nss.PK11_Authenticate.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    nss.PK11_FreeSlot.argtypes = [ctypes.c_void_p]
    if nss.NSS_InitReadWrite(f"sql:{profile}".encode()) != 0:
        raise SystemExit(f"NSS could not open {profile}")
    try:
        slot = nss.PK11_GetInternalKeySlot()
        ok = nss.PK11_Authenticate(slot, 1, None) == 0  # the empty password: no prompt
        nss.PK11_FreeSlot(slot)
        if not ok:
            raise SystemExit("NSS: the profile's key store wants a password")
        out = []
        for value in values:
            raw = value.encode()
            buf = (ctypes.c_ubyte * len(raw)).from_buffer_copy(raw)
            data, keyid, result = _SECItem(0, buf, len(raw)), _SECItem(0, None, 0), _SECItem(0, None, 0)
            if nss.PK11SDR_Encrypt(ctypes.byref(keyid), ctypes.byref(data), ctypes.byref(result), None) != 0:
                raise SystemExit("NSS: PK11SDR_Encrypt failed")
            out.append(base64.b64encode(ctypes.string_at(result.data, result.len)).decode())
            nss.SECITEM_ZfreeItem(ctypes.byref(result), 0)
        return out
    finally:
        nss.NSS_Shutdown()


def thunderbird_profile(directory: Path, email: str, password: str, host: str, port: int, ca_file: Path) -> None:
    """A profile with the account already set up, as the account wizard would leave it:

    - user.js: the IMAP account (implicit TLS, the port deskmail uses), its identity and Local Folders; no
      start page, default-client check, telemetry, update checks, what's-new or in-app notices. Two kinds of
      background work are switched off because they would run on during the timed starts and compete with
      them: downloading every message body for offline use (autosync; deskmail's start-up sync and Claws Mail
      do not do it either, the list needs only the headers, which Thunderbird keeps in INBOX.msf) and the
      global search indexer (gloda). Both favour Thunderbird.
    - cert9.db/key4.db (certutil, empty primary password) with the sandbox's CA trusted for servers, so
      Thunderbird checks the server certificate as it would a real one, with no exception dialog.
    - logins.json with the password encrypted by NSS with the key in key4.db, exactly what "Use Password
      Manager to remember this password" writes, so no password prompt appears.
    """
    directory.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{directory}", "-n", "deskmail sandbox CA", "-t", "C,,",
                    "-i", str(ca_file)], check=True)
    origin = f"imap://{host}"  # what Thunderbird's MsgIncomingServer looks up: no user name in it
    user_enc, password_enc = nss_encrypt(directory, [email, password])
    now = int(time.time() * 1000)
    (directory / "logins.json").write_text(json.dumps({
        "nextId": 2, "version": 3, "potentiallyVulnerablePasswords": [], "dismissedBreachAlertsByLoginGUID": {},
        "logins": [{"id": 1, "hostname": origin, "httpRealm": origin, "formSubmitURL": None,
                    "usernameField": "", "passwordField": "", "encryptedUsername": user_enc,
                    "encryptedPassword": password_enc, "guid": "{0b7e5bd2-3c8a-4e1f-9d6a-5f0c2a1b7e01}",
                    "encType": 1, "timeCreated": now, "timeLastUsed": now, "timePasswordChanged": now,
                    "timesUsed": 1}]}))
    # The window as it was left after a session in the inbox: without it a first start shows the account's
    # start page, and no start would open the list.
    inbox = f"imap://{quote(email, safe='')}@{host}/INBOX"
    (directory / "session.json").write_text(json.dumps({"windows": [{"type": "3pane", "tabs": {
        "rev": 0, "selectedIndex": 0, "tabs": [{"mode": "mail3PaneTab", "ext": {}, "state": {
            "firstTab": True, "folderPaneVisible": True, "messagePaneVisible": True, "folderURI": inbox}}]}}]}))
    prefs = {
        "mail.accountmanager.accounts": "account1,account2",
        "mail.accountmanager.defaultaccount": "account1",
        "mail.accountmanager.localfoldersserver": "server2",
        "mail.account.account1.identities": "id1",
        "mail.account.account1.server": "server1",
        "mail.account.account2.server": "server2",
        "mail.identity.id1.fullName": "Bench",
        "mail.identity.id1.useremail": email,
        "mail.identity.id1.valid": True,
        "mail.server.server1.type": "imap",
        "mail.server.server1.hostname": host,
        "mail.server.server1.port": port,
        "mail.server.server1.socketType": 3,  # SSL/TLS
        "mail.server.server1.authMethod": 3,  # normal password
        "mail.server.server1.userName": email,
        "mail.server.server1.name": email,
        "mail.server.server1.offline_download": False,
        "mail.server.server1.autosync_offline_stores": False,
        "mail.server.server2.type": "none",
        "mail.server.server2.hostname": "Local Folders",
        "mail.server.server2.userName": "nobody",
        "mail.server.server2.name": "Local Folders",
        "mailnews.database.global.indexer.enabled": False,
        "mailnews.start_page.enabled": False,
        "mail.shell.checkDefaultClient": False,
        "mail.rights.override": True,
        "mail.inappnotifications.enabled": False,
        "mail.provider.enabled": False,
        "mail.biff.play_sound": False,
        "mail.biff.show_alert": False,
        "app.update.auto": False,
        "app.update.checkInstallTime": False,
        "extensions.update.enabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "datareporting.healthreport.uploadEnabled": False,
        "datareporting.usage.uploadEnabled": False,
        "toolkit.telemetry.enabled": False,
        "toolkit.telemetry.archive.enabled": False,
        "toolkit.startup.max_resumed_crashes": -1,
        "browser.shell.checkDefaultBrowser": False,
        "calendar.timezone.useSystemTimezone": True,
        "app.donation.eoy.version.viewed": 999,
    }
    (directory / "user.js").write_text("".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n"
                                               for k, v in prefs.items()))


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


def colours(picture: bytes) -> int:
    return len({picture[i:i + 4] for i in range(0, len(picture), 4)})


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(program: Program, runs: int, display: object, shot: Path | None) -> dict[str, Any]:
    load_before = load_average()
    # Warm-up: the start that fills caches, and the settled picture of the list's area.
    # Settled: the area shows rows and has been unchanged for 4 s. Rows: many colours (text), not the empty
    # screen or a plain background, or "equal to the settled picture" would be true from the first instant;
    # a first start of Claws Mail at 50,000 messages shows an empty list for a while as it downloads headers.
    proc = program.start()
    started, last, since = time.monotonic(), b"", time.monotonic()
    while time.monotonic() - started < 900:
        time.sleep(0.5)
        now = grab(display, program.box)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 4 and time.monotonic() - started > SETTLE and colours(now) >= 20:
            break
    reference = last
    if shot is not None:  # to check by eye that the box holds the list's rows
        subprocess.run(["import", "-display", DISPLAY, "-window", "root", str(shot)], check=False)
    program.stop(proc)
    if colours(reference) < 20:
        raise SystemExit(f"{program.name}: the measured area {program.box} shows no message list "
                         f"({colours(reference)} colours)")
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
            "rss_median_mb": statistics.median(rss), "load_before": load_before, "load_after": load_average()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--compare", default="claws,thunderbird",
                        help="which of claws,thunderbird to measure beside deskmail")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="save each program's settled screen here (to check the measured box by eye)")
    args = parser.parse_args(argv)
    wanted = set(args.compare.split(",")) - {""}
    needs = {"Xvfb": "xvfb", "certutil": "libnss3-tools"}
    needs.update({"claws-mail": "claws-mail"} if "claws" in wanted else {})
    needs.update({"thunderbird": "thunderbird"} if "thunderbird" in wanted else {})
    missing = [package for command, package in needs.items() if shutil.which(command) is None]
    if missing:
        raise SystemExit(f"needs: apt-get install -y {' '.join(missing)}")
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
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
    runtime = root / "runtime"
    runtime.mkdir(mode=0o700)  # Qt refuses a runtime directory others may read
    env = {**os.environ, "DISPLAY": DISPLAY, "QT_QPA_PLATFORM": "xcb", "XDG_RUNTIME_DIR": str(runtime),
           "HOME": str(root)}
    sb = start_sandbox(root / "sandbox")
    results: dict[str, Any] = {"messages": args.messages}
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
        programs: dict[str, Program] = {}
        desk = Deskmail(home, env)
        desk.box = (240, 90, 600, 120)  # the list's first rows at the window's remembered default place
        programs["deskmail"] = desk
        if "claws" in wanted:
            claws = Claws(root / "claws", env)
            claws_config(root / "claws", user.email, user.password, sb.host, sb.imap_port)
            claws.box = (400, 200, 400, 60)
            programs["claws"] = claws
        if "thunderbird" in wanted:
            tb = Thunderbird(root / "thunderbird", env)
            thunderbird_profile(tb.profile, user.email, user.password, sb.host, sb.imaps_port, sb.ca_file)
            tb.box = (290, 90, 290, 150)  # the first two cards of its list
            programs["thunderbird"] = tb
        for key in ("claws", "thunderbird", "deskmail"):
            if key not in programs:
                continue
            program = programs[key]
            program.prepare()
            shot = args.screenshots / f"{key}.png" if args.screenshots else None
            r = measure(program, args.runs, display, shot)
            results[program.name] = r
            print(f"{program.name}: start → inbox painted, median {r['median_s']:.3f} s over {args.runs} "
                  f"({', '.join(f'{t:.3f}' for t in r['painted_s'])}); RSS {r['rss_median_mb']:.1f} MB "
                  f"({', '.join(f'{m:.0f}' for m in r['rss_mb'])}); load {r['load_before']} → {r['load_after']}",
                  flush=True)
        for key, program in programs.items():
            if key != "deskmail":
                ratio = results["deskmail"]["median_s"] / results[program.name]["median_s"]
                results[f"ratio_{key}"] = ratio
                print(f"deskmail / {program.name} = {ratio:.2f}", flush=True)
    finally:
        sb.stop()
        xvfb.terminate()
        xvfb.wait()
        shutil.rmtree(root, ignore_errors=True)  # gigabytes of mail at 50,000 messages, also after a failure
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
