"""The connection doctor: tell a person exactly why mail does not work, and what to do.

Half of the founding document (Spectrum's Outlook setup page) is
troubleshooting: firewall or antivirus blocking the servers, the wrong
encryption, "My outgoing server (SMTP) requires authentication" left off, app
passwords with two-factor authentication. The doctor checks each of those for
real and says which one it is.

Theory of operation
-------------------
:func:`run_doctor` checks the incoming and then the outgoing server as a chain
of steps (DNS → TCP → alternative ports → TLS → greeting/capabilities → login
→ relaying/test message), stopping each chain at its first failure, then
compares the settings with the provider database and, on request, measures a
round trip. Each step yields one :class:`Finding` (status, stable ``code``,
what was seen, likely cause, remedy, duration, extra data), streamed through
``on_step`` as it completes and collected in a :class:`Report`.

Guarantees: the password is only sent over verified TLS (or in clear when the
account explicitly says so), it never appears in a finding (no check puts what
it sent into one, and a server's answer that repeats it is kept without its
words), every wait is bounded (:class:`Timeouts`), and the doctor never
raises for a network or server problem: problems are findings.

Public surface::

    run_doctor(account, password, *, send_test=False, round_trip=False,
               timeouts=None, on_step=None, resolver=None, alternatives=None,
               provider=None) -> Report
    Report.ok / .summary() / .to_json() / .find(code)
    Finding, Code, Status, Step, Server, Timeouts, DnsResolver
    deskmail.cli.doctor_render.DoctorPrinter, render_report   (Rich output, in the CLI)

Codes and remedies are documented in ``docs/doctor.md``.
"""

from deskmail.codes import MEANINGS, Code
from deskmail.doctor.context import DEFAULT_ALTERNATIVES, Alternatives, Timeouts
from deskmail.doctor.providers import ProviderHint, Recommendation
from deskmail.doctor.report import Finding, Report, Server, Status, Step
from deskmail.doctor.resolve import DnsResolver, Resolver
from deskmail.doctor.runner import run_doctor

__all__ = [
    "DEFAULT_ALTERNATIVES",
    "MEANINGS",
    "Alternatives",
    "Code",
    "DnsResolver",
    "Finding",
    "ProviderHint",
    "Recommendation",
    "Report",
    "Resolver",
    "Server",
    "Status",
    "Step",
    "Timeouts",
    "run_doctor",
]
