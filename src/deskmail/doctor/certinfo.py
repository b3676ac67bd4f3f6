"""Read the few fields of an X.509 certificate the doctor needs, from DER bytes.

Why not ``ssl.SSLSocket.getpeercert()``: it returns an empty dict for a
certificate that did not verify, and an unverified certificate is exactly what
the doctor must describe ("issued by *Avast Web/Mail Shield Root*", "expired on
…"). Why not ``cryptography``: it is only a sandbox/test dependency of
deskmail, and four fields do not justify a compiled dependency for every user.

So this is a small, defensive DER walker: it reads the issuer and subject
names, the validity period and the subjectAltName DNS names / IP addresses,
and refuses (``ValueError``) anything that is not well-formed rather than
guessing. It is never used to make a trust decision; OpenSSL does that.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

_OID_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
}
_OID_SUBJECT_ALT_NAME = "2.5.29.17"
_STRING_TAGS = {0x0C, 0x13, 0x14, 0x16, 0x1E, 0x1C, 0x12}  # UTF8, Printable, T61, IA5, BMP, Universal, Numeric


@dataclass(frozen=True)
class CertInfo:
    subject: tuple[tuple[str, str], ...]  # (("CN", "imap.example.net"), ("O", "Example"))
    issuer: tuple[tuple[str, str], ...]
    not_before: datetime
    not_after: datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    sha256: str  # hex fingerprint of the DER bytes, for pinning and display

    def _get(self, name: tuple[tuple[str, str], ...], key: str) -> str:
        return next((v for k, v in name if k == key), "")

    @property
    def subject_cn(self) -> str:
        return self._get(self.subject, "CN")

    @property
    def issuer_cn(self) -> str:
        return self._get(self.issuer, "CN")

    @property
    def issuer_org(self) -> str:
        return self._get(self.issuer, "O")

    @property
    def issuer_text(self) -> str:
        """A readable issuer: 'CN, O' without repetition, e.g. 'R11, Let's Encrypt'."""
        parts: list[str] = []
        for key in ("CN", "O", "OU"):
            value = self._get(self.issuer, key)
            if value and value not in parts:
                parts.append(value)
        return ", ".join(parts) or "an unnamed issuer"

    @property
    def self_issued(self) -> bool:
        return self.subject == self.issuer

    def names(self) -> tuple[str, ...]:
        """Names the certificate is valid for (subjectAltName, else the subject CN)."""
        return self.dns_names + self.ip_addresses or ((self.subject_cn,) if self.subject_cn else ())


def _read_tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Return (tag, value_start, value_end) of the element at ``pos``."""
    if pos + 2 > end:
        raise ValueError("truncated DER element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("high tag numbers are not used in certificates")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise ValueError("DER element runs past its container")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    pos = start
    while pos < end:
        tag, vstart, vend = _read_tlv(data, pos, end)
        yield tag, vstart, vend
        pos = vend


def _oid(raw: bytes) -> str:
    if not raw:
        raise ValueError("empty OID")
    first = raw[0]
    parts = [str(min(first // 40, 2)), str(first - 40 * min(first // 40, 2))]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join(parts)


def _string(tag: int, raw: bytes) -> str:
    if tag == 0x1E:
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:
        return raw.decode("utf-32-be", "replace")
    return raw.decode("utf-8", "replace")


def _name(data: bytes, start: int, end: int) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for set_tag, s_start, s_end in _children(data, start, end):
        if set_tag != 0x31:
            raise ValueError("Name must be a SEQUENCE of SETs")
        for seq_tag, a_start, a_end in _children(data, s_start, s_end):
            if seq_tag != 0x30:
                raise ValueError("bad AttributeTypeAndValue")
            items = list(_children(data, a_start, a_end))
            if len(items) != 2 or items[0][0] != 0x06:
                raise ValueError("bad AttributeTypeAndValue")
            oid = _oid(data[items[0][1] : items[0][2]])
            vtag, v_start, v_end = items[1]
            if oid in _OID_NAMES and vtag in _STRING_TAGS:
                out.append((_OID_NAMES[oid], _string(vtag, data[v_start:v_end])))
    return tuple(out)


def _time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime: YYMMDDHHMMSSZ, years 1950-2049 (RFC 5280 §4.1.2.5.1)
        parsed = datetime.strptime(text, "%y%m%d%H%M%SZ")
        if parsed.year >= 2050:
            parsed = parsed.replace(year=parsed.year - 100)
    elif tag == 0x18:
        parsed = datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError("bad time")
    return parsed.replace(tzinfo=UTC)


def _subject_alt_names(data: bytes, start: int, end: int) -> tuple[list[str], list[str]]:
    dns_names: list[str] = []
    ips: list[str] = []
    tag, s_start, s_end = _read_tlv(data, start, end)
    if tag != 0x30:
        raise ValueError("bad subjectAltName")
    for gtag, g_start, g_end in _children(data, s_start, s_end):
        raw = data[g_start:g_end]
        if gtag == 0x82:  # [2] dNSName
            dns_names.append(raw.decode("ascii", "replace"))
        elif gtag == 0x87 and len(raw) in (4, 16):  # [7] iPAddress
            ips.append(str(ipaddress.ip_address(raw)))
    return dns_names, ips


def parse_certificate(der: bytes) -> CertInfo:
    """Parse a DER certificate. Raises ValueError for anything malformed."""
    tag, c_start, c_end = _read_tlv(der, 0, len(der))
    if tag != 0x30:
        raise ValueError("not a certificate")
    tag, t_start, t_end = _read_tlv(der, c_start, c_end)
    if tag != 0x30:
        raise ValueError("no tbsCertificate")
    fields = list(_children(der, t_start, t_end))
    if fields and fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    if len(fields) < 6:
        raise ValueError("tbsCertificate too short")
    # serial, signature, issuer, validity, subject, subjectPublicKeyInfo, [extensions]
    issuer = _name(der, fields[2][1], fields[2][2])
    validity = list(_children(der, fields[3][1], fields[3][2]))
    if len(validity) != 2:
        raise ValueError("bad validity")
    not_before = _time(validity[0][0], der[validity[0][1] : validity[0][2]])
    not_after = _time(validity[1][0], der[validity[1][1] : validity[1][2]])
    subject = _name(der, fields[4][1], fields[4][2])
    dns_names: list[str] = []
    ips: list[str] = []
    for ftag, f_start, f_end in fields[6:]:
        if ftag != 0xA3:  # [3] extensions
            continue
        etag, e_start, e_end = _read_tlv(der, f_start, f_end)
        if etag != 0x30:
            raise ValueError("bad extensions")
        for _xtag, x_start, x_end in _children(der, e_start, e_end):
            parts = list(_children(der, x_start, x_end))
            if not parts or parts[0][0] != 0x06:
                raise ValueError("bad extension")
            if _oid(der[parts[0][1] : parts[0][2]]) != _OID_SUBJECT_ALT_NAME:
                continue
            octets = parts[-1]
            if octets[0] != 0x04:
                raise ValueError("bad extension value")
            dns_names, ips = _subject_alt_names(der, octets[1], octets[2])
    return CertInfo(
        subject=subject,
        issuer=issuer,
        not_before=not_before,
        not_after=not_after,
        dns_names=tuple(dns_names),
        ip_addresses=tuple(ips),
        sha256=hashlib.sha256(der).hexdigest(),
    )
