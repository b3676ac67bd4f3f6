"""Show the doctor's findings to a person, with Rich.

Used by ``deskmail doctor``: pass a :class:`DoctorPrinter` as ``on_step`` so
each check prints as soon as it completes, then call :meth:`DoctorPrinter.summary`
with the report. :func:`render_report` prints a finished report in one go (for
a report loaded from JSON, or when live output is not wanted).

Every text printed here comes from a :class:`Finding`, which never holds a
password (see :mod:`deskmail.doctor.report`); the printer adds nothing that could.
"""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from deskmail.doctor.report import Finding, Report, Server, Status

_MARKS: dict[Status, tuple[str, str]] = {
    Status.OK: ("✔", "green"),
    Status.WARNING: ("!", "yellow"),
    Status.FAILED: ("✘", "bold red"),
    Status.SKIPPED: ("–", "dim"),
}

_STEP_LABELS = {
    "dns": "name lookup",
    "tcp": "connection",
    "ports": "other ports",
    "tls": "encryption",
    "greeting": "greeting",
    "login": "login",
    "send": "sending",
    "round_trip": "round trip",
    "settings": "settings",
}


def finding_text(finding: Finding, *, details: bool = True) -> Text:
    """One finding: a status mark, the step, what was seen, its duration; then cause and remedy."""
    mark, style = _MARKS[finding.status]
    line = Text()
    line.append(f" {mark} ", style=style)
    line.append(f"{_STEP_LABELS.get(finding.step.value, finding.step.value):<12}", style="bold")
    line.append(finding.text.rstrip("."), style="dim" if finding.status is Status.SKIPPED else "")
    if finding.duration_ms and finding.status is not Status.SKIPPED:
        line.append(f"  ({finding.duration_ms} ms)", style="dim")
    if details and finding.status in (Status.FAILED, Status.WARNING):
        if finding.cause:
            line.append("\n" + " " * 16 + "Likely cause: ", style="italic")
            line.append(finding.cause.rstrip(".") + ".")
        if finding.remedy:
            line.append("\n" + " " * 16 + "What to do: ", style="bold " + style.replace("bold ", ""))
            line.append(finding.remedy.rstrip(".") + ".")
    if details and finding.status in (Status.FAILED, Status.WARNING):
        line.append(f"  [{finding.code.value}]", style="dim")
    return line


class DoctorPrinter:
    """A ``run_doctor(on_step=…)`` callback that prints progress lines as checks complete."""

    def __init__(self, console: Console | None = None, *, show_skipped: bool = True) -> None:
        self.console = console or Console()
        self.show_skipped = show_skipped
        self._server: Server | None = None

    def __call__(self, finding: Finding) -> None:
        if finding.status is Status.SKIPPED and not self.show_skipped:
            return
        if finding.server is not self._server:
            self._server = finding.server
            self.console.print(Text(f"{finding.server.heading} server", style="bold underline"))
        self.console.print(finding_text(finding))

    def summary(self, report: Report) -> None:
        style = "green" if report.ok else ("yellow" if not _any_failed(report) else "red")
        title = "All good" if report.ok else "Problems found"
        self.console.print(
            Panel(Text(report.summary()), title=title, border_style=style, expand=False)
        )
        self.console.print(Text(f"Checked in {report.duration_ms / 1000:.1f} s.", style="dim"))


def _any_failed(report: Report) -> bool:
    return any(f.status is Status.FAILED for f in report.findings)


def render_report(report: Report, console: Console | None = None, *, show_skipped: bool = True) -> None:
    """Print a finished report: all findings grouped by server, then the summary."""
    printer = DoctorPrinter(console, show_skipped=show_skipped)
    for finding in report.findings:
        printer(finding)
    printer.summary(report)
