"""Calendar invitations (``text/calendar``, RFC 5545) summarised: what, when, where, who invites.

A small tolerant reader of the few properties a person needs, not a calendar library: lines are
unfolded, parameters skipped, escapes undone; anything unreadable is simply left out.
"""

from __future__ import annotations

import re

from deskmail.render.model import CalendarEvent

_MAX_EVENTS = 20


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _when(value: str, params: str) -> str:
    """``20261204T100000Z`` → ``2026-12-04 10:00 UTC``; a date alone → ``2026-12-04``."""
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})?(Z)?)?", value.strip())
    if not m:
        return value.strip()
    date = f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    if m.group(4) is None:
        return date
    tz = " UTC" if m.group(7) else ""
    zone = re.search(r"TZID=\"?([^\";:]+)", params, re.I)
    if zone and not tz:
        tz = f" ({zone.group(1)})"
    return f"{date} {m.group(4)}:{m.group(5)}{tz}"


def summarize(text: str) -> list[CalendarEvent]:
    lines = re.sub(r"\r?\n[ \t]", "", text.replace("\r\n", "\n")).split("\n")
    method = ""
    events: list[CalendarEvent] = []
    current: dict[str, str] | None = None
    for line in lines:
        name_params, sep, value = line.partition(":")
        if not sep:
            continue
        name, _, params = name_params.partition(";")
        name = name.strip().upper()
        if name == "METHOD":
            method = value.strip().upper()[:20]
        elif name == "BEGIN" and value.strip().upper() == "VEVENT":
            current = {}
        elif name == "END" and value.strip().upper() == "VEVENT" and current is not None:
            events.append(CalendarEvent(method, current.get("SUMMARY", ""), current.get("DTSTART", ""),
                                        current.get("DTEND", ""), current.get("LOCATION", ""),
                                        current.get("ORGANIZER", "")))
            current = None
            if len(events) >= _MAX_EVENTS:
                break
        elif current is not None and name in ("SUMMARY", "LOCATION", "DTSTART", "DTEND", "ORGANIZER"):
            if name in ("DTSTART", "DTEND"):
                current[name] = _when(value, params)
            elif name == "ORGANIZER":
                cn = re.search(r"CN=(\"[^\"]*\"|[^;:]*)", params, re.I)
                address = re.sub(r"(?i)^mailto:", "", value.strip())
                who = cn.group(1).strip('"') if cn else ""
                current[name] = f"{who} <{address}>" if who else address
            else:
                current[name] = _unescape(value.strip())
    return events


def describe(event: CalendarEvent) -> str:
    """A few lines for the message text."""
    head = {"REQUEST": "Invitation", "CANCEL": "Cancelled", "REPLY": "Reply to an invitation"}.get(
        event.method, "Calendar event")
    lines = [f"{head}: {event.summary or '(no title)'}"]
    if event.start:
        lines.append(f"When: {event.start}" + (f" – {event.end}" if event.end else ""))
    if event.location:
        lines.append(f"Where: {event.location}")
    if event.organizer:
        lines.append(f"Organiser: {event.organizer}")
    return "\n".join(lines)
