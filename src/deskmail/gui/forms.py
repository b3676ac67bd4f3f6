"""The server settings form: every field a person may need, shared by the wizard and account settings."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from deskmail.gui.common import tr
from deskmail.model import Account, Protocol, Security, default_port
from deskmail.setup import ManualSettings

SECURITIES = (Security.SSL, Security.STARTTLS, Security.NONE)


def _security_combo() -> QComboBox:
    box = QComboBox()
    for sec in SECURITIES:
        box.addItem(sec.label, sec.value)
    return box


def _port_box() -> QSpinBox:
    box = QSpinBox()
    box.setRange(1, 65535)
    return box


class ServerForm(QWidget):
    """Incoming (IMAP or POP3) and outgoing (SMTP) server fields, with the user name."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.protocol = QComboBox()
        self.protocol.addItem("IMAP", Protocol.IMAP.value)
        self.protocol.addItem("POP3", Protocol.POP3.value)
        self.in_host = QLineEdit()
        self.in_host.setPlaceholderText("imap.example.com")
        self.in_port = _port_box()
        self.in_security = _security_combo()
        self.username = QLineEdit()
        self.smtp_host = QLineEdit()
        self.smtp_host.setPlaceholderText("smtp.example.com")
        self.smtp_port = _port_box()
        self.smtp_security = _security_combo()
        self.smtp_auth = QCheckBox(tr("The outgoing server requires a login (almost always)"))
        self.smtp_auth.setChecked(True)
        self.leave_on_server = QCheckBox(tr("Leave messages on the server (POP3)"))
        self.leave_on_server.setChecked(True)

        incoming = QGroupBox(tr("Incoming mail"))
        f = QFormLayout(incoming)
        f.addRow(tr("Protocol:"), self.protocol)
        f.addRow(tr("Server:"), self.in_host)
        f.addRow(tr("Port:"), self.in_port)
        f.addRow(tr("Security:"), self.in_security)
        f.addRow(tr("User name:"), self.username)
        f.addRow("", self.leave_on_server)
        outgoing = QGroupBox(tr("Outgoing mail (SMTP)"))
        g = QFormLayout(outgoing)
        g.addRow(tr("Server:"), self.smtp_host)
        g.addRow(tr("Port:"), self.smtp_port)
        g.addRow(tr("Security:"), self.smtp_security)
        g.addRow("", self.smtp_auth)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(incoming)
        layout.addWidget(outgoing)

        # Changing the security picks its standard port, as a person expects (993 <-> 143 …).
        self.in_security.currentIndexChanged.connect(self._default_in_port)
        self.protocol.currentIndexChanged.connect(self._default_in_port)
        self.smtp_security.currentIndexChanged.connect(self._default_smtp_port)
        self.protocol.currentIndexChanged.connect(self._pop3_options)
        self._default_in_port()
        self._default_smtp_port()
        self._pop3_options()

    def _proto(self) -> Protocol:
        return Protocol(self.protocol.currentData())

    def _default_in_port(self) -> None:
        self.in_port.setValue(default_port(self._proto(), Security(self.in_security.currentData())))

    def _default_smtp_port(self) -> None:
        self.smtp_port.setValue(default_port(Protocol.SMTP, Security(self.smtp_security.currentData())))

    def _pop3_options(self) -> None:
        self.leave_on_server.setVisible(self._proto() is Protocol.POP3)

    def load(self, account: Account) -> None:
        """Show ``account``'s settings (ports after the security, which would reset them)."""
        self.protocol.setCurrentIndex(self.protocol.findData(account.incoming.protocol.value))
        self.in_security.setCurrentIndex(self.in_security.findData(account.incoming.security.value))
        self.smtp_security.setCurrentIndex(self.smtp_security.findData(account.outgoing.security.value))
        self.in_host.setText(account.incoming.host)
        self.in_port.setValue(account.incoming.port)
        self.username.setText(account.incoming.username)
        self.smtp_host.setText(account.outgoing.host)
        self.smtp_port.setValue(account.outgoing.port)
        self.smtp_auth.setChecked(account.outgoing.auth_required)
        self.leave_on_server.setChecked(bool(account.options.get("leave_on_server", True)))

    def settings(self, email: str, *, name: str | None = None, display_name: str = "",
                 ca_file: str = "") -> ManualSettings:
        return ManualSettings(
            email=email, name=name, display_name=display_name, protocol=self._proto().value,
            in_host=self.in_host.text().strip(), in_port=self.in_port.value(),
            in_security=str(self.in_security.currentData()), smtp_host=self.smtp_host.text().strip(),
            smtp_port=self.smtp_port.value(), smtp_security=str(self.smtp_security.currentData()),
            smtp_auth=self.smtp_auth.isChecked(), username=self.username.text().strip() or None,
            ca_file=ca_file or None,
        )

    def options(self) -> dict[str, object]:
        """Account options the form sets (POP3: leave on server)."""
        return {"leave_on_server": self.leave_on_server.isChecked()} if self._proto() is Protocol.POP3 else {}
