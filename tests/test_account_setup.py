"""`account add EMAIL` with discovery: candidates tried in order, verified before saving; `discover`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import Home, closed_port

pytestmark = pytest.mark.servers



def provider_file(home: Home, domain: str, incoming: list[tuple[int, str]], smtp_port: int) -> None:
    servers = "".join(
        f"""<incomingServer type="imap"><hostname>localhost</hostname><port>{port}</port>
        <socketType>{sock}</socketType><username>%EMAILADDRESS%</username>
        <authentication>password-cleartext</authentication></incomingServer>"""
        for port, sock in incoming
    )
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1"><emailProvider id="{domain}"><domain>{domain}</domain>
<displayName>Test Mail</displayName><displayShortName>Test</displayShortName>{servers}
<outgoingServer type="smtp"><hostname>localhost</hostname><port>{smtp_port}</port><socketType>STARTTLS</socketType>
<username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication></outgoingServer>
</emailProvider></clientConfig>"""
    d = home.root / "config" / "providers"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{domain}.xml").write_text(xml)


@pytest.fixture
def home(tmp_path: Path, mail_user: Any) -> Home:
    return Home(tmp_path / "home", env={"DM_PW": mail_user.password})


def test_first_candidate_fails_second_is_verified_and_saved(sandbox: Any, mail_user: Any, home: Home) -> None:
    domain = mail_user.email.split("@")[1]
    dead = closed_port()
    provider_file(home, domain, [(dead, "SSL"), (sandbox.imaps_port, "SSL")], sandbox.submission_port)
    proc = home.run("account", "add", mail_user.email, "--password-env", "DM_PW", "--ca-file", str(sandbox.ca_file),
                    "--json")
    assert proc.returncode == 0, proc.stderr
    assert f"localhost:{dead}" in proc.stderr and "refused the connection" in proc.stderr  # why the first failed
    assert "the settings tried before did not work" in proc.stderr
    saved = json.loads(proc.stdout)
    assert saved["incoming"]["port"] == sandbox.imaps_port and saved["incoming"]["host"] == "localhost"
    assert saved["outgoing"]["port"] == sandbox.submission_port


def test_rejected_password_stops_at_the_answering_server(sandbox: Any, mail_user: Any, home: Home) -> None:
    domain = mail_user.email.split("@")[1]
    third = closed_port()
    provider_file(home, domain, [(sandbox.imaps_port, "SSL"), (third, "SSL")], sandbox.submission_port)
    proc = home.run("account", "add", mail_user.email, "--password-env", "DM_PW", "--ca-file", str(sandbox.ca_file),
                    env={"DM_PW": "wrong-password"})
    assert proc.returncode == 8
    assert "these settings are right" in proc.stderr
    assert f":{third}" not in proc.stderr  # the password was not tried anywhere else
    assert not (home.root / "config" / "accounts.toml").exists()


def test_discover_spectrum_offline_json(home: Home) -> None:
    proc = home.run("discover", "someone@socal.rr.com", "--offline", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["email"] == "someone@socal.rr.com"
    first = data["candidates"][0]
    assert first["incoming"] == {"protocol": "imap", "host": "imap.spectrum.net", "port": 993, "security": "ssl",
                                 "username": "someone@socal.rr.com"}
    assert first["outgoing"]["host"] == "smtp.spectrum.net" and first["outgoing"]["security"] == "starttls"
    assert first["source"] == "provider database" and first["needs_confirmation"] is False
    hosts = [c["incoming"]["host"] for c in data["candidates"]]
    assert "mail.twc.com" in hosts  # the public-data alternative, after the founding document's
    assert set(first) == {"incoming", "outgoing", "source", "confidence", "notes", "needs_confirmation"}
    human = home.run("discover", "someone@spectrum.net", "--offline")
    assert "imap.spectrum.net" in human.stdout and "mobile.charter.net" in human.stdout
