"""What the doctor found: findings, their codes, and the report that aggregates them.

A :class:`Finding` is one check's result, in words a person can act on (what was
seen, the likely cause, the remedy) plus a stable machine ``code`` that the GUI,
scripts and the tests key on. Wording may improve between releases; codes do
not change meaning. ``docs/doctor.md`` documents every code; a test keeps the
two in step.

No finding is ever given a password: the checks never put what they sent into
one, and the wire keeps a server's answer to credentials without its words when
it repeats them (:mod:`deskmail.doctor.wire`). So texts and JSON are written as
they are, never searched and masked afterwards.

The report aggregates worst-first (like Delta Chat's connectivity view): a
server's state is its worst finding, and the one-line summary names the first
failure of each server, which is the root cause because later steps are not
attempted after a failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from deskmail.codes import Code as Code  # the doctor's modules import it from here


class Server(StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"

    @property
    def heading(self) -> str:
        return "Incoming" if self is Server.INCOMING else "Outgoing"


class Step(StrEnum):
    """The checks, in the order they run for each server."""

    DNS = "dns"
    TCP = "tcp"
    PORTS = "ports"  # only when the configured port cannot be reached
    TLS = "tls"
    GREETING = "greeting"
    LOGIN = "login"
    SEND = "send"  # outgoing only: relaying permission, and the test message
    ROUND_TRIP = "round_trip"  # only with round_trip=True
    SETTINGS = "settings"  # comparison with the provider database


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"  # works, but something should be changed
    FAILED = "failed"  # does not work as configured
    SKIPPED = "skipped"  # not checked (an earlier step failed, or nothing to check)

    @property
    def rank(self) -> int:
        """Worst-first ordering: failed > warning > skipped > ok."""
        return {"ok": 0, "skipped": 1, "warning": 2, "failed": 3}[self.value]


# Steps that must have passed for an account to be usable. A skipped one means
# "not verified", which is not good enough for Report.ok.
ESSENTIAL_STEPS = frozenset({Step.DNS, Step.TCP, Step.TLS, Step.GREETING, Step.LOGIN, Step.SEND})


@dataclass(frozen=True)
class Finding:
    """One check's result."""

    server: Server
    step: Step
    status: Status
    code: Code
    text: str  # what was seen, e.g. "No answer from smtp.example.net (1.2.3.4) port 587 within 8 s"
    cause: str = ""
    remedy: str = ""
    duration_ms: int = 0
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("server", "step", "status", "code"):
            enum_type = {"server": Server, "step": Step, "status": Status, "code": Code}[name]
            object.__setattr__(self, name, enum_type(getattr(self, name)))
        object.__setattr__(self, "data", dict(self.data))

    @property
    def line(self) -> str:
        """The finding as one paragraph, in errors.py's what / cause / remedy style."""
        parts = [self.text.rstrip(".") + "."]
        if self.cause:
            parts.append("Likely cause: " + self.cause.rstrip(".") + ".")
        if self.remedy:
            parts.append("What to do: " + self.remedy.rstrip(".") + ".")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server.value,
            "step": self.step.value,
            "status": self.status.value,
            "code": self.code.value,
            "text": self.text,
            "cause": self.cause,
            "remedy": self.remedy,
            "duration_ms": self.duration_ms,
            "data": dict(self.data),
        }


@dataclass(frozen=True)
class Report:
    account: str
    findings: tuple[Finding, ...]
    duration_ms: int = 0

    def for_server(self, server: Server) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.server is server)

    def codes(self, server: Server | None = None) -> list[Code]:
        return [f.code for f in self.findings if server is None or f.server is server]

    def find(self, code: Code | str) -> Finding | None:
        """The first finding with this code (tests and the GUI look findings up by code)."""
        wanted = Code(code)
        return next((f for f in self.findings if f.code is wanted), None)

    def status(self, server: Server) -> Status:
        """Worst status of one server's findings (an optional check that was skipped does not count)."""
        worst = Status.OK
        for f in self.for_server(server):
            if f.status is Status.SKIPPED and f.step not in ESSENTIAL_STEPS:
                continue
            if f.status.rank > worst.rank:
                worst = f.status
        return worst

    def server_ok(self, server: Server) -> bool:
        findings = self.for_server(server)
        if not findings:
            return False
        return not any(
            f.status is Status.FAILED or (f.status is Status.SKIPPED and f.step in ESSENTIAL_STEPS)
            for f in findings
        )

    @property
    def ok(self) -> bool:
        """True only when everything needed to receive and send mail was verified to work."""
        return self.server_ok(Server.INCOMING) and self.server_ok(Server.OUTGOING)

    def _server_sentence(self, server: Server) -> str:
        findings = self.for_server(server)
        if not findings:
            return f"{server.heading} was not checked."
        failures = [f for f in findings if f.status is Status.FAILED]
        failed = failures[0] if failures else None
        if failed is not None and failed.step is Step.TCP:
            # "port 587 is blocked, 465 works" says more than "no answer on 587".
            failed = next((f for f in failures if f.step is Step.PORTS), failed)
        if failed is not None:
            sentence = f"{server.heading} fails: {_lower_first(failed.text.rstrip('.'))}"
            if failed.remedy:
                sentence += f"; {_lower_first(failed.remedy.rstrip('.'))}"
            return sentence + "."
        skipped = next(
            (f for f in findings if f.status is Status.SKIPPED and f.step in ESSENTIAL_STEPS), None
        )
        if skipped is not None:
            reason = re.sub(r"^Not checked(:| because)\s*", "", skipped.text.rstrip("."))
            return f"{server.heading} was not fully checked: {_lower_first(reason)}."
        warnings = [f for f in findings if f.status is Status.WARNING]
        if warnings:
            first = _lower_first(warnings[0].text.rstrip("."))
            more = f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else ""
            return f"{server.heading} works, with a warning: {first}{more}."
        return f"{server.heading} works."

    def summary(self) -> str:
        """One line: 'Incoming works. Outgoing fails: port 587 is blocked …'."""
        return " ".join(self._server_sentence(s) for s in Server)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "ok": self.ok,
            "summary": self.summary(),
            "duration_ms": self.duration_ms,
            "incoming": self.status(Server.INCOMING).value,
            "outgoing": self.status(Server.OUTGOING).value,
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def _lower_first(text: str) -> str:
    # "No answer from …" reads better mid-sentence as "no answer from …", but
    # keep acronyms and names ("SSL/TLS …", "IMAP …") as they are.
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text
