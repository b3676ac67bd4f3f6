"""Account settings: every field, "Test account settings" (the doctor, live, step by step), and Repair.

Repair applies what the doctor recommends and can be applied to the form (another port or
encryption, another user name), after the person agreed; nothing is saved until "Save".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from deskmail.app import Deskmail
from deskmail.doctor.report import Finding, Report, Server, Status
from deskmail.errors import DeskmailError
from deskmail.gui.checklist import CheckList
from deskmail.gui.common import show_error, tr
from deskmail.gui.forms import ServerForm
from deskmail.gui.tasks import Task
from deskmail.model import Account, Security
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
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.form)
        layout.addWidget(self.checks, 1)
        layout.addWidget(self.buttons)
        self.test.clicked.connect(self.run_test)
        self.repair.clicked.connect(self.apply_repairs)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.fixes: list[Repair] = []
        self.task: Task | None = None

    def edited(self) -> Account:
        """The account as the form shows it (raises the settings' error when a field is wrong)."""
        built = self.app.build_account(self.form.settings(self.original.email, name=self.original.name,
                                                          display_name=self.display_name.text().strip(),
                                                          ca_file=self.original.ca_file))
        return replace(self.original, display_name=built.display_name, incoming=built.incoming,
                       outgoing=built.outgoing, options={**self.original.options, **self.form.options()})

    def run_test(self) -> None:
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
