"""The first-run setup wizard: address → settings found → password → verified → saved.

Pages, in order: the address; what discovery found (where from, the provider's notes, IMAP or
POP3) with the password; the live check of both servers, a line per step (on failure the
doctor runs and its findings are shown with their remedies); the manual settings, pre-filled,
with "Test account settings"; done. Everything that touches the network runs as a
:class:`~deskmail.gui.tasks.Task`; the pages only show what the tasks report.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from deskmail import setup
from deskmail.app import Deskmail
from deskmail.doctor.report import Report, Status
from deskmail.errors import AuthError, DeskmailError
from deskmail.gui.checklist import CheckList
from deskmail.gui.common import app_icon, error_html, esc, tr, wrapping_label
from deskmail.gui.forms import ServerForm
from deskmail.gui.tasks import Task
from deskmail.model import Account, Protocol, email_domain
from deskmail.secrets import Secret

ADDRESS, FOUND, VERIFY, MANUAL, DONE = range(5)


class SetupWizard(QWizard):
    """Adds one account; ``account_added`` carries it once it is saved."""

    account_added = Signal(object)

    def __init__(self, app: Deskmail, parent: QWidget | None = None, *, ca_file: str = "") -> None:
        super().__init__(parent)
        self.app = app
        self.ca_file = ca_file  # an extra trusted certificate authority (self-hosted servers, the sandbox)
        self.candidates: list[setup.Candidate] = []
        self.account: Account | None = None  # the verified account, ready to save
        self.password: Secret | None = None  # the password it was verified with
        self.failed: setup.Candidate | None = None  # the settings to start from by hand
        self.tasks: list[Task] = []
        self.setWindowTitle(tr("Set up your mail account"))
        self.setWindowIcon(app_icon())
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage)
        self.setMinimumSize(720, 680)
        self.address_page = AddressPage()
        self.found_page = FoundPage(self)
        self.verify_page = VerifyPage(self)
        self.manual_page = ManualPage(self)
        self.done_page = DonePage(self)
        for page_id, page in ((ADDRESS, self.address_page), (FOUND, self.found_page), (VERIFY, self.verify_page),
                              (MANUAL, self.manual_page), (DONE, self.done_page)):
            self.setPage(page_id, page)

    @property
    def email(self) -> str:
        return self.address_page.email.text().strip()

    @property
    def display_name(self) -> str:
        return self.address_page.name.text().strip()

    def run(self, task: Task) -> Task:
        """Start ``task``; kept until the wizard closes (closing cancels what still runs)."""
        self.tasks.append(task)
        task.setParent(self)
        task.start()
        return task

    def done(self, result: int) -> None:
        for task in self.tasks:
            task.cancel.cancel()
            task.answer(False)
        super().done(result)


class AddressPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle(tr("Your mail account"))
        self.setSubTitle(tr("deskmail finds your provider's settings and checks them before saving anything."))
        self.name = QLineEdit()
        self.name.setPlaceholderText(tr("shown to the people you write to"))
        self.email = QLineEdit()
        self.email.setPlaceholderText("you@example.com")
        self.problem = wrapping_label()
        form = QFormLayout(self)
        form.addRow(tr("Your name:"), self.name)
        form.addRow(tr("Email address:"), self.email)
        form.addRow("", self.problem)
        self.email.textChanged.connect(self.completeChanged)

    def isComplete(self) -> bool:
        return "@" in self.email.text()

    def validatePage(self) -> bool:
        address = self.email.text().strip()
        try:
            setup.check_address(address)
        except DeskmailError as exc:
            self.problem.setText(str(exc))
            return False
        self.problem.clear()
        return True


class FoundPage(QWizardPage):
    """Discovery's answer for the address, and the password."""

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle(tr("Settings found"))
        self.setSubTitle(tr("Check what deskmail found, then type your password."))
        self.status = wrapping_label()
        self.servers = wrapping_label(rich=True)
        self.notes = wrapping_label(rich=True)
        self.imap = QRadioButton(tr("IMAP: mail stays on the server, folders and flags in step everywhere "
                                    "(recommended)"))
        self.pop3 = QRadioButton(tr("POP3: download the inbox to this computer"))
        self.leave = QCheckBox(tr("Leave a copy of each message on the server"))
        self.leave.setChecked(True)
        self.choice = QButtonGroup(self)
        self.choice.addButton(self.imap)
        self.choice.addButton(self.pop3)
        self.imap.setChecked(True)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_hint = wrapping_label(rich=True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.servers)
        layout.addWidget(self.notes)
        self.choice_box = QWidget()
        c = QVBoxLayout(self.choice_box)
        c.setContentsMargins(0, 0, 0, 0)
        c.addWidget(self.imap)
        c.addWidget(self.pop3)
        c.addWidget(self.leave)
        layout.addWidget(self.choice_box)
        form = QFormLayout()
        form.addRow(tr("Password:"), self.password)
        form.addRow("", self.password_hint)
        layout.addLayout(form)
        layout.addStretch(1)
        self.password.textChanged.connect(self.completeChanged)
        self.pop3.toggled.connect(self._protocol_changed)
        self.found: frozenset[str] = frozenset()
        self.failed: DeskmailError | None = None
        self.searching = False

    def initializePage(self) -> None:
        self.found = frozenset()
        self.imap.setChecked(True)
        self._look_up()

    def _protocol(self) -> str:
        return "pop3" if self.pop3.isChecked() else "imap"

    def _protocol_changed(self) -> None:
        self.leave.setEnabled(self.pop3.isChecked())
        if self.found == {"imap", "pop3"} and not self.searching:
            self._look_up()

    def _look_up(self) -> None:
        w = self.w
        self.searching = True
        self.failed = None
        w.candidates = []
        self.status.setText(tr("Looking up the settings for {domain}…").format(domain=email_domain(w.email)))
        self.servers.clear()
        self.notes.clear()
        self.choice_box.setVisible(len(self.found) > 1)
        settings = setup.ManualSettings(email=w.email, display_name=w.display_name,
                                        protocol=self._protocol() if self.found else None, ca_file=w.ca_file or None)
        found: list[frozenset[str]] = []

        def choose(protocols: frozenset[str]) -> str:
            found.append(protocols)
            return "imap"

        def work(task: Task) -> tuple[list[setup.Candidate], frozenset[str]]:
            cands = w.app.candidates(settings, choose_protocol=choose)
            protocols = found[0] if found else frozenset(c.account.incoming.protocol.value for c in cands)
            return cands, protocols

        task = Task(work)
        task.done.connect(self._found)
        task.failed.connect(self._not_found)
        w.run(task)
        self.completeChanged.emit()

    def _found(self, result: tuple[list[setup.Candidate], frozenset[str]]) -> None:
        cands, protocols = result
        self.searching = False
        if not self.found:
            self.found = protocols
        w = self.w
        w.candidates = cands
        best = cands[0]
        a = best.account
        self.status.setText(tr("Where these settings come from: {source}").format(source=best.source))
        rows = [(tr("Incoming"), a.incoming.describe()), (tr("Outgoing"), a.outgoing.describe()),
                (tr("User name"), a.incoming.username)]
        self.servers.setText("<table>" + "".join(f"<tr><td><b>{esc(k)}:</b>&nbsp;</td><td>{esc(v)}</td></tr>"
                                                 for k, v in rows) + "</table>"
                             + (f"<p>{esc(tr('{n} other settings will be tried if these do not work.'))}</p>"
                                .format(n=len(cands) - 1) if len(cands) > 1 else ""))
        notes = list(dict.fromkeys(best.notes))
        self.notes.setText("".join(f"<p>• {esc(n)}</p>" for n in notes))
        self.choice_box.setVisible(self.found == {"imap", "pop3"})
        # Said before the password is typed: an app password wanted, IMAP to switch on, OAuth2 only…
        hint = "".join(f"<p>• {esc(r.text.rstrip('.'))}." + (f' <a href="{esc(r.url)}">{esc(tr("How?"))}</a>'
                                                             if r.url else "") + "</p>" for r in best.before_password)
        self.password_hint.setText(hint)
        self.completeChanged.emit()

    def _not_found(self, exc: DeskmailError) -> None:
        self.searching = False
        self.failed = exc
        self.status.setText(tr("The settings could not be found."))
        self.servers.setText(error_html(exc) + "<p>" + esc(tr("Press Next to enter them by hand.")) + "</p>")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        if self.searching:
            return False
        return self.failed is not None or (bool(self.w.candidates) and bool(self.password.text()))

    def nextId(self) -> int:
        return MANUAL if self.failed is not None else VERIFY

    def secret(self) -> Secret:
        return Secret(self.password.text())

    def options(self) -> dict[str, object]:
        return {"leave_on_server": self.leave.isChecked()} if self._protocol() == "pop3" else {}


class VerifyPage(QWizardPage):
    """Logs in with each candidate; on failure shows what the doctor finds."""

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle(tr("Checking your account"))
        self.setSubTitle(tr("deskmail logs in to the incoming and the outgoing server."))
        self.checks = CheckList()
        self.verdict = wrapping_label(rich=True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.checks, 1)
        layout.addWidget(self.verdict)
        self.finished = False

    def initializePage(self) -> None:
        self.checks.clear()
        self.verdict.clear()
        self.finished = False
        self.w.account = None
        self.w.failed = None
        w = self.w
        cands = [replace(c, account=_with_options(c.account, w.found_page.options())) for c in w.candidates]
        password = w.found_page.secret()

        def work(task: Task) -> setup.Verification:
            return w.app.verify_candidates(cands, password, confirm=task.ask, on_event=task.report)

        task = Task(work)
        task.progress.connect(self._event)
        task.asked.connect(lambda c: task.answer(self._confirm(c)))
        task.done.connect(lambda v: self._verified(v, password))
        task.failed.connect(self._crashed)
        w.run(task)
        self.completeChanged.emit()

    def _confirm(self, c: setup.Candidate) -> bool:
        where = f"{c.account.incoming.host}:{c.account.incoming.port}"
        answer = QMessageBox.question(
            self, tr("Send your password there?"),
            tr("deskmail cannot vouch for {where} ({source}). Send your password to it?").format(
                where=where, source=c.source),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _event(self, event: setup.SetupEvent) -> None:
        c = event.candidate
        if isinstance(event, setup.Trying):
            self.checks.add("info", tr("Trying {servers} ({source})").format(
                servers=f"{c.account.incoming.describe()} + {c.account.outgoing.describe()}", source=c.source))
        elif isinstance(event, setup.Checked):
            s = c.account.incoming if event.server == "incoming" else c.account.outgoing
            self.checks.add("ok", (tr("Incoming server {server} accepted the login") if event.server == "incoming"
                                   else tr("Outgoing server {server} accepted the login")).format(
                server=f"{s.host}:{s.port}"))
        elif isinstance(event, setup.Skipped):
            self.checks.add("skipped", tr("Skipped {host}: not confirmed").format(host=c.account.incoming.host))
        elif isinstance(event, setup.DidNotWork):
            # What failed, in one line: when no settings work, the doctor's findings below say why at length.
            self.checks.add("failed", event.error.what.rstrip(".") + ".", code=event.error.code)

    def _verified(self, v: setup.Verification, password: Secret) -> None:
        w = self.w
        if v.account is not None:
            w.account = v.account
            w.password = password
            self.finished = True
            self.verdict.setText("<b>" + esc(tr("Both servers work. Press Next to save the account.")) + "</b>")
            self.completeChanged.emit()
            return
        if not v.failures:
            self.verdict.setText(esc(tr("No settings were confirmed, so nothing was checked. Press Next to "
                                        "enter the settings by hand.")))
            w.failed = w.candidates[0] if w.candidates else None
            self.finished = True
            self.completeChanged.emit()
            return
        candidate, first = v.failures[-1] if v.rejected is not None else v.failures[0]
        w.failed = candidate
        if isinstance(first, AuthError):
            self.verdict.setText(esc(tr("The server answered but refused the login, so the settings are right "
                                        "and the password (or the user name) is not.")))
        self.checks.add("info", tr("Asking the connection doctor why…"))
        self._run_doctor(candidate.account, password)

    def _run_doctor(self, account: Account, password: Secret) -> None:
        def work(task: Task) -> Report:
            return self.w.app.doctor(account, password, on_step=task.report)

        task = Task(work)
        task.progress.connect(self._finding)
        task.done.connect(self._diagnosed)
        task.failed.connect(self._crashed)
        self.w.run(task)

    def _finding(self, f: object) -> None:
        from deskmail.doctor.report import Finding

        if isinstance(f, Finding) and f.status in (Status.FAILED, Status.WARNING):
            self.checks.add_finding(f)

    def _diagnosed(self, report: Report) -> None:
        self.verdict.setText(self.verdict.text() + "<p>" + esc(tr(
            "The account was not saved. Press Next to check or change the settings by hand.")) + "</p>")
        self.finished = True
        self.completeChanged.emit()

    def _crashed(self, exc: DeskmailError) -> None:
        self.checks.add_error(exc)
        self.finished = True
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.finished

    def nextId(self) -> int:
        return DONE if self.w.account is not None else MANUAL


class ManualPage(QWizardPage):
    """Every setting by hand, pre-filled, with "Test account settings"."""

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle(tr("Account settings"))
        self.setSubTitle(tr("Your provider's help pages list these. Change what is wrong, then test."))
        self.form = ServerForm()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.test = QPushButton(tr("Test account settings"))
        self.checks = CheckList()
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        row = QHBoxLayout()
        row.addWidget(QLabel(tr("Password:")))
        row.addWidget(self.password, 1)
        row.addWidget(self.test)
        layout.addLayout(row)
        layout.addWidget(self.checks, 1)
        self.test.clicked.connect(self.run_test)
        self.testing = False

    def initializePage(self) -> None:
        w = self.w
        self.checks.clear()
        w.account = None
        start = w.failed or (w.candidates[0] if w.candidates else None)
        if start is not None:
            self.form.load(start.account)
        else:
            self.form.username.setText(w.email)
        self.password.setText(w.found_page.password.text())

    def run_test(self) -> None:
        w = self.w
        self.checks.clear()
        w.account = None
        try:
            account = w.app.build_account(self.form.settings(w.email, display_name=w.display_name,
                                                             ca_file=w.ca_file))
        except DeskmailError as exc:
            self.checks.add_error(exc)
            return
        account = _with_options(account, self.form.options())
        password = Secret(self.password.text())
        candidate = setup.Candidate(account, tr("the settings above"))

        def work(task: Task) -> setup.Verification:
            return w.app.verify_candidates([candidate], password, confirm=lambda c: True, on_event=task.report)

        self.testing = True
        self.test.setEnabled(False)
        task = Task(work)
        task.progress.connect(self._event)
        task.done.connect(lambda v: self._tested(v, password))
        task.failed.connect(self._crashed)
        w.run(task)
        self.completeChanged.emit()

    def _event(self, event: setup.SetupEvent) -> None:
        c = event.candidate
        if isinstance(event, setup.Trying):
            self.checks.add("info", tr("Logging in to {server}").format(server=c.account.incoming.describe()))
        elif isinstance(event, setup.Checked):
            s = c.account.incoming if event.server == "incoming" else c.account.outgoing
            self.checks.add("ok", tr("{server} accepted the login").format(server=s.describe()))
        elif isinstance(event, setup.DidNotWork):
            self.checks.add_error(event.error)

    def _tested(self, v: setup.Verification, password: Secret) -> None:
        if v.account is not None:
            self._idle()
            self.w.account = v.account
            self.w.password = password
            self.checks.add("ok", tr("Both servers work. Press Next to save the account."))
            self.completeChanged.emit()
            return
        candidate, _ = v.failures[0]
        self.checks.add("info", tr("Asking the connection doctor why…"))

        def work(task: Task) -> Report:
            return self.w.app.doctor(candidate.account, password, on_step=task.report)

        task = Task(work)
        task.progress.connect(self._finding)
        task.done.connect(self.checks.add_report)
        task.failed.connect(self._crashed)
        task.ended.connect(self._idle)
        self.w.run(task)

    def _idle(self) -> None:
        """The test (and the doctor after a failure) has finished."""
        self.testing = False
        self.test.setEnabled(True)
        self.completeChanged.emit()

    def _finding(self, f: object) -> None:
        from deskmail.doctor.report import Finding

        if isinstance(f, Finding) and f.status in (Status.FAILED, Status.WARNING):
            self.checks.add_finding(f)

    def _crashed(self, exc: DeskmailError) -> None:
        self._idle()
        self.checks.add_error(exc)

    def isComplete(self) -> bool:
        return self.w.account is not None and not self.testing

    def nextId(self) -> int:
        return DONE


class DonePage(QWizardPage):
    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle(tr("Saving your account"))
        self.setSubTitle(tr("The password goes into your desktop's keyring, never into a file."))
        self.message = wrapping_label(rich=True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addStretch(1)
        self.saved = False

    def initializePage(self) -> None:
        w = self.w
        self.saved = False
        assert w.account is not None
        assert w.password is not None
        password = w.password
        try:
            w.app.check_keyring()
            account = w.app.add_account(w.account, password)
        except DeskmailError as exc:
            self.setTitle(tr("The account could not be saved"))
            self.message.setText(error_html(exc))
            self.completeChanged.emit()
            return
        self.saved = True
        self.setTitle(tr("All set"))
        self.message.setText(esc(tr("{email} is ready. deskmail is now fetching your mail; it appears in the "
                                    "main window as it arrives.").format(email=account.email)))
        w.account_added.emit(account)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.saved


def _with_options(account: Account, options: dict[str, object]) -> Account:
    if not options or account.incoming.protocol is not Protocol.POP3:
        return account
    return replace(account, options={**account.options, **options})
