"""Account settings: every field, "Test account settings" (the doctor, live, step by step), and Repair;
the account's identities (From-addresses) with their signatures.

Repair applies what the doctor recommends and can be applied to the form (another port or
encryption, another user name), after the person agreed; nothing of the form is saved until "Save".
Identities are saved as each is added, edited or removed (the engine checks them: a bad address, a line
break in a name, an address used twice are refused there with the reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from deskmail.app import Deskmail
from deskmail.doctor.report import Finding, Report, Server, Status
from deskmail.errors import DeskmailError
from deskmail.gui.checklist import CheckList
from deskmail.gui.common import error_html, show_error, tr, wrapping_label
from deskmail.gui.forms import ServerForm
from deskmail.gui.tasks import Task
from deskmail.model import Account, Identity, Security
from deskmail.secrets import Secret


@dataclass(frozen=True, slots=True)
class Repair:
    """A change the doctor recommends for one server's settings."""

    server: Server
    port: int | None = None
    security: Security | None = None
    username: str | None = None

    def describe(self) -> str:
        where = tr("incoming") if self.server is Server.INCOMING else tr("outgoing")
        parts = []
        if self.port is not None:
            parts.append(tr("port {port}").format(port=self.port))
        if self.security is not None:
            parts.append(self.security.label)
        if self.username is not None:
            parts.append(tr("user name {name}").format(name=self.username))
        return tr("Use {change} for the {where} server").format(change=", ".join(parts), where=where)


def repairs(report: Report) -> list[Repair]:
    """The doctor's applicable recommendations: the first per server, from its failed or warned findings."""
    out: dict[Server, Repair] = {}
    for f in report.findings:
        if f.status not in (Status.FAILED, Status.WARNING) or f.server in out:
            continue
        fix = _repair(f)
        if fix is not None:
            out[f.server] = fix
    return list(out.values())


def _repair(f: Finding) -> Repair | None:
    port, security, username = f.data.get("port"), f.data.get("security"), f.data.get("username")
    if not (isinstance(port, int) or security or isinstance(username, str)):
        return None
    return Repair(f.server, port if isinstance(port, int) else None,
                  Security(security) if isinstance(security, str) and security else None,
                  username if isinstance(username, str) else None)


class AccountSettings(QDialog):
    def __init__(self, app: Deskmail, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.original = app.account(name)
        self.setWindowTitle(tr("Account settings — {name}").format(name=self.original.email))
        self.resize(680, 720)
        self.display_name = QLineEdit(self.original.display_name)
        self.email = QLineEdit(self.original.email)
        self.email.setReadOnly(True)
        self.form = ServerForm()
        self.form.load(self.original)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText(tr("leave empty to use the saved password"))
        self.test = QPushButton(tr("Test account settings"))
        self.repair = QPushButton(tr("Repair"))
        self.repair.setEnabled(False)
        self.checks = CheckList()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        top = QFormLayout()
        top.addRow(tr("Your name:"), self.display_name)
        top.addRow(tr("Email address:"), self.email)
        row = QHBoxLayout()
        row.addWidget(self.password, 1)
        row.addWidget(self.test)
        row.addWidget(self.repair)
        top.addRow(tr("Password:"), row)
        self.identities = Identities(app, self.original.name, self)
        self.identities.changed.connect(self._identities_changed)
        # The identities and the test's findings share the space below the servers: side by side in the
        # dialog's height, neither had room for more than three lines.
        self.identities.setTitle("")
        self.identities.setFlat(True)
        self.below = QTabWidget()
        self.below.addTab(self.identities, tr("Identities (addresses you send from)"))
        self.below.addTab(self.checks, tr("Test results"))
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.form)
        layout.addWidget(self.below, 1)
        layout.addWidget(self.buttons)
        self.test.clicked.connect(self.run_test)
        self.repair.clicked.connect(self.apply_repairs)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.fixes: list[Repair] = []
        self.task: Task | None = None

    def _identities_changed(self) -> None:
        """Saved already: the form's Save must keep them (and the own identity's name is the name above)."""
        self.original = self.app.account(self.original.name)
        self.display_name.setText(self.original.display_name)

    def edited(self) -> Account:
        """The account as the form shows it (raises the settings' error when a field is wrong)."""
        built = self.app.build_account(self.form.settings(self.original.email, name=self.original.name,
                                                          display_name=self.display_name.text().strip(),
                                                          ca_file=self.original.ca_file))
        return replace(self.original, display_name=built.display_name, incoming=built.incoming,
                       outgoing=built.outgoing, options={**self.original.options, **self.form.options()})

    def run_test(self) -> None:
        self.below.setCurrentWidget(self.checks)
        self.checks.clear()
        self.fixes = []
        self.repair.setEnabled(False)
        try:
            account = self.edited()
            password = Secret(self.password.text()) if self.password.text() else self.app.password(self.original)
        except DeskmailError as exc:
            self.checks.add_error(exc)
            return

        def work(task: Task) -> Report:
            return self.app.doctor(account, password, on_step=task.report)

        task = Task(work, self)
        task.progress.connect(self.checks.add_finding)
        task.done.connect(self._diagnosed)
        task.failed.connect(self.checks.add_error)
        task.ended.connect(lambda: self.test.setEnabled(True))
        self.test.setEnabled(False)
        self.task = task
        task.start()

    def _diagnosed(self, report: Report) -> None:
        self.checks.add_report(report)
        self.fixes = repairs(report)
        self.repair.setEnabled(bool(self.fixes))
        self.repair.setToolTip("\n".join(f.describe() for f in self.fixes))

    def apply_repairs(self) -> None:
        text = "\n".join(f"• {f.describe()}" for f in self.fixes)
        answer = QMessageBox.question(self, tr("Repair"), tr("The doctor recommends:\n{changes}\n\nChange the "
                                                            "settings so? (Nothing is saved until Save.)")
                                      .format(changes=text))
        if answer != QMessageBox.StandardButton.Yes:
            return
        for fix in self.fixes:
            self.apply(fix)
        self.fixes = []
        self.repair.setEnabled(False)
        self.checks.add("ok", tr("Settings changed as the doctor recommends; test again, then Save."))

    def apply(self, fix: Repair) -> None:
        f = self.form
        incoming = fix.server is Server.INCOMING
        if fix.security is not None:  # before the port: choosing a security sets its standard port
            box = f.in_security if incoming else f.smtp_security
            box.setCurrentIndex(box.findData(fix.security.value))
        if fix.port is not None:
            (f.in_port if incoming else f.smtp_port).setValue(fix.port)
        if fix.username is not None:
            f.username.setText(fix.username)

    def save(self) -> None:
        try:
            account = self.edited()
            if self.password.text():
                self.app.set_password(self.original.name, Secret(self.password.text()), verify=False)
            self.app.update_account(account)
        except DeskmailError as exc:
            show_error(self, exc)
            return
        self.accept()

    def done(self, result: int) -> None:
        if self.task is not None:
            self.task.cancel.cancel()
        super().done(result)


class IdentityDialog(QDialog):
    """One identity's address, name, Reply-To and signature. ``save(identity)`` stores it (raising the engine's
    error, shown here, the dialog staying open); the own address of the account cannot be changed here."""

    def __init__(self, parent: QWidget, title: str, identity: Identity | None, *, own: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(520, 380)
        self.address = QLineEdit(identity.address if identity else "")
        self.address.setReadOnly(own)
        self.address.setPlaceholderText(tr("name@example.com"))
        self.name = QLineEdit(identity.name if identity else "")
        self.reply_to = QLineEdit(identity.reply_to if identity else "")
        self.reply_to.setPlaceholderText(tr("empty: replies come to the address itself"))
        self.signature = QPlainTextEdit(identity.signature if identity else "")
        self.signature.setPlaceholderText(tr("Plain text, added below “-- ” at the end of each message"))
        self.problem = wrapping_label(rich=True)
        self.problem.setStyleSheet("color: #c62828")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        form = QFormLayout()
        form.addRow(tr("Email address:"), self.address)
        form.addRow(tr("Name:"), self.name)
        form.addRow(tr("Reply-To:"), self.reply_to)
        form.addRow(tr("Signature:"), self.signature)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.buttons.rejected.connect(self.reject)
        self.save: Callable[[Identity], object] = lambda identity: None
        self.buttons.accepted.connect(self._accept)

    def _accept(self) -> None:
        from deskmail.outbox.identities import make_identity

        try:
            self.save(make_identity(self.address.text(), self.name.text(), self.reply_to.text(),
                                    self.signature.toPlainText()))
        except DeskmailError as exc:
            self.problem.setText(error_html(exc))
            return
        self.accept()


class Identities(QGroupBox):
    """The account's identities (its own address first) with Add, Edit and Remove."""

    changed = Signal()

    def __init__(self, app: Deskmail, account: str, parent: QWidget | None = None) -> None:
        super().__init__(tr("Identities (addresses you send from)"), parent)
        self.app, self.account = app, account
        self.list = QListWidget()
        self.add_button = QPushButton(tr("Add…"))
        self.edit_button = QPushButton(tr("Edit…"))
        self.remove_button = QPushButton(tr("Remove"))
        buttons = QVBoxLayout()
        for b in (self.add_button, self.edit_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.add_button.clicked.connect(lambda: self.open_dialog(None).open())
        self.edit_button.clicked.connect(lambda: self.open_dialog(self.selected()).open())
        self.list.itemDoubleClicked.connect(lambda _item: self.open_dialog(self.selected()).open())
        self.remove_button.clicked.connect(self.remove)
        self.list.currentRowChanged.connect(self._enable)
        self.reload()

    def reload(self, select: str = "") -> None:
        self.list.clear()
        for n, i in enumerate(self.app.identities(self.account)):
            text = i.label() + (tr(" (this account's own address)") if n == 0 else "")
            if i.signature:
                text += "\n    " + i.signature.split("\n", 1)[0]
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.list.addItem(item)
            if i.address == select:
                self.list.setCurrentItem(item)
        self._enable()

    def selected(self) -> Identity | None:
        item = self.list.currentItem()
        data = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return data if isinstance(data, Identity) else None

    def _enable(self) -> None:
        row = self.list.currentRow()
        self.edit_button.setEnabled(row >= 0)
        self.remove_button.setEnabled(row > 0)  # the account's own address stays
        self.remove_button.setToolTip("" if row != 0 else tr("The account's own address cannot be removed"))

    def open_dialog(self, identity: Identity | None) -> IdentityDialog:
        """The dialog that adds (``identity`` None) or edits an identity; OK saves it through the engine."""
        own = identity is not None and self.list.currentRow() == 0
        title = tr("Add an identity") if identity is None else tr("Edit {address}").format(address=identity.address)
        dialog = IdentityDialog(self, title, identity, own=own)

        def save(new: Identity) -> None:
            if identity is None:
                self.app.add_identity(self.account, new)
            else:
                self.app.update_identity(self.account, new, identity.address)
            self.reload(new.address)
            self.changed.emit()

        dialog.save = save
        return dialog

    def remove(self) -> None:
        identity = self.selected()
        if identity is None or self.list.currentRow() == 0:
            return
        answer = QMessageBox.question(self, tr("Remove identity"),
                                      tr("Stop sending from {address}?").format(address=identity.address))
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.app.remove_identity(self.account, identity.address)
        except DeskmailError as exc:
            show_error(self, exc)
            return
        self.reload()
        self.changed.emit()
