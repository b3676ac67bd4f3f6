"""Recognise certificates made by antivirus "mail shields" and corporate TLS proxies.

Such products decrypt mail connections to scan them: they present their own
certificate, signed by a root CA they install on the computer. Python's trust
store may or may not contain that root (Windows: usually yes, through the
system store; Linux/macOS with a bundled store: often no). Either way the
person needs to hear *which* product is in the middle, because the fix is in
that product's settings, not in deskmail's.

The names below are the issuer names these products put in their root
certificates (as seen in support forums and the products' own docs, 2024-2026).
Public CAs whose names look similar (Comodo/Sectigo, Symantec/DigiCert) are
deliberately absent: matching them would accuse real certificates.
"""

from __future__ import annotations

import re

from deskmail.doctor.certinfo import CertInfo

# (pattern on the issuer's CN/O/OU, product name shown to the person)
_INTERCEPTORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), product)
    for pattern, product in (
        (r"\bavast\b", "Avast"),  # "Avast Web/Mail Shield Root"
        (r"\bavg\b", "AVG"),  # "AVG Web/Mail Shield Root"
        (r"\bnorton\b", "Norton"),  # "Norton Web/Mail Shield Root"
        (r"\bkaspersky\b", "Kaspersky"),  # "Kaspersky Anti-Virus Personal Root Certificate"
        (r"\beset\b", "ESET"),  # "ESET SSL Filter CA"
        (r"\bbitdefender\b", "Bitdefender"),  # "Bitdefender Personal CA.Net-Defender"
        (r"\bmcafee\b", "McAfee"),
        (r"\btrend ?micro\b", "Trend Micro"),
        (r"\bsophos\b", "Sophos"),
        (r"\bwebroot\b", "Webroot"),
        (r"\bbullguard\b", "BullGuard"),
        (r"\bdr\.? ?web\b", "Dr.Web"),
        (r"\bg ?data\b", "G DATA"),
        (r"\bf-secure\b", "F-Secure"),
        (r"\bpanda security\b", "Panda"),
        (r"\bavira\b", "Avira"),
        (r"\bforti(gate|net)\b", "Fortinet FortiGate"),
        (r"\bzscaler\b", "Zscaler"),
        (r"\bnetskope\b", "Netskope"),
        (r"\bpalo ?alto\b", "Palo Alto Networks"),
        (r"\bcisco umbrella\b", "Cisco Umbrella"),
        (r"\bblue ?coat\b", "Blue Coat"),
        (r"\bforcepoint\b", "Forcepoint"),
        (r"\bbarracuda\b", "Barracuda"),
        (r"\bcheck ?point\b", "Check Point"),
        (r"\bsonicwall\b", "SonicWall"),
        (r"\bwatchguard\b", "WatchGuard"),
        (r"\bmitmproxy\b", "mitmproxy"),
        (r"\bfiddler", "Fiddler"),
        (r"\bportswigger\b", "Burp Suite"),
    )
)


def interceptor_name(cert: CertInfo) -> str | None:
    """The product whose CA issued this certificate, if it is a known interceptor."""
    haystack = " | ".join(value for key, value in cert.issuer if key in ("CN", "O", "OU"))
    for pattern, product in _INTERCEPTORS:
        if pattern.search(haystack):
            return product
    return None
