"""The provider database: clientConfig files bundled with deskmail, plus the user's own.

Files are read from ``deskmail/discovery/providers/*.xml`` (package data),
then from each extra directory given (a user's or packager's drop-in
folder). A later file wins for a domain an earlier one also lists, so a
drop-in file can correct a bundled entry without editing it. A file that
cannot be used is skipped and listed in :attr:`ProviderDatabase.problems`;
it never stops the others from loading.

Lookups are pure dictionary reads (well under a millisecond once loaded);
loading parses every file once per process, cached by the directories'
contents.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from deskmail.discovery.domains import normalize, parents
from deskmail.discovery.ispdb import (
    MAX_CONFIG_BYTES,
    InvalidClientConfig,
    Provider,
    parse_client_config,
)


@dataclass(frozen=True)
class ProviderMatch:
    provider: Provider
    asked: str  # the domain (or MX host) that was looked up
    matched: str  # the database key that matched: the domain itself or a parent

    @property
    def exact(self) -> bool:
        return self.asked == self.matched


class ProviderDatabase:
    """Providers indexed by e-mail domain, by MX host domain and by server host name."""

    def __init__(self, providers: Iterable[Provider], problems: Iterable[str] = ()) -> None:
        self.providers: tuple[Provider, ...] = tuple(providers)
        self.problems: tuple[str, ...] = tuple(problems)
        self._by_domain: dict[str, Provider] = {}
        self._by_mx: dict[str, Provider] = {}
        hosts: set[str] = set()
        for p in self.providers:
            for d in p.domains:
                self._by_domain[d] = p
            for d in p.mx_domains:
                self._by_mx[d] = p
            hosts.update(s.hostname.lower() for s in (*p.incoming, *p.outgoing) if "%" not in s.hostname)
        self._server_hosts = frozenset(hosts)

    def __len__(self) -> int:
        return len(self.providers)

    def lookup(self, domain: str) -> ProviderMatch | None:
        """The provider for an e-mail domain: exact match first, then parent domains
        (``socal.rr.com`` falls back to ``rr.com``)."""
        asked = normalize(domain)
        for candidate in parents(asked):
            provider = self._by_domain.get(candidate)
            if provider is not None:
                return ProviderMatch(provider, asked, candidate)
        return None

    def lookup_mx(self, mx_host: str) -> ProviderMatch | None:
        """The provider that runs an MX host: the host's own name and then each parent
        is tried against the MX index (most specific first, so
        ``x.mail.protection.outlook.com`` meets ``protection.outlook.com`` before
        ``outlook.com``), then against e-mail domains as Thunderbird does."""
        asked = normalize(mx_host)
        names = parents(asked)
        for index in (self._by_mx, self._by_domain):
            for candidate in names:
                provider = index.get(candidate)
                if provider is not None:
                    return ProviderMatch(provider, asked, candidate)
        return None

    def vouches_for(self, host: str) -> bool:
        """True when ``host`` is a server of some provider in the database."""
        return normalize(host) in self._server_hosts


def _xml_files(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.suffix == ".xml" and p.is_file())
    except OSError:
        return []


def _read(path: Path | resources.abc.Traversable, origin: str) -> Provider:
    if isinstance(path, Path):
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise InvalidClientConfig(origin, f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    with path.open("rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    return parse_client_config(data, origin=origin).provider


def _load(entries: Sequence[tuple[Path | resources.abc.Traversable, str]]) -> ProviderDatabase:
    providers: list[Provider] = []
    problems: list[str] = []
    for path, origin in entries:
        try:
            providers.append(_read(path, origin))
        except InvalidClientConfig as exc:
            problems.append(str(exc))
        except OSError as exc:
            problems.append(f"The mail settings file {origin} cannot be read ({exc.strerror or exc}).")
    return ProviderDatabase(providers, problems)


@functools.lru_cache(maxsize=1)
def bundled_database() -> ProviderDatabase:
    """The providers shipped with deskmail (parsed once per process)."""
    folder = resources.files("deskmail.discovery") / "providers"
    entries = sorted(
        ((f, f"providers/{f.name}") for f in folder.iterdir() if f.name.endswith(".xml")),
        key=lambda e: e[1],
    )
    return _load(entries)


@functools.lru_cache(maxsize=8)
def _database_with(key: tuple[tuple[str, int, int], ...]) -> ProviderDatabase:
    bundled = bundled_database()
    extra = _load([(Path(name), name) for name, _, _ in key])
    return ProviderDatabase((*bundled.providers, *extra.providers), (*bundled.problems, *extra.problems))


def load_database(extra_dirs: Sequence[str | os.PathLike[str]] = ()) -> ProviderDatabase:
    """The bundled providers, then the ``*.xml`` files of each directory in ``extra_dirs``.

    Cached by the files' names, sizes and modification times, so an edited
    drop-in file is read again on the next call.
    """
    if not extra_dirs:
        return bundled_database()
    key: list[tuple[str, int, int]] = []
    for d in extra_dirs:
        for path in _xml_files(Path(d).expanduser()):
            try:
                st = path.stat()
            except OSError:
                continue
            key.append((str(path), st.st_size, st.st_mtime_ns))
    return _database_with(tuple(key))
