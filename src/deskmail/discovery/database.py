"""The provider database: clientConfig files bundled with deskmail, plus the user's own.

Files are read from ``deskmail/discovery/providers/*.xml`` (package data),
then from each extra directory given (a user's or packager's drop-in
folder). A later file wins for a domain an earlier one also lists, so a
drop-in file can correct a bundled entry without editing it. A file that
cannot be used is skipped and listed in :attr:`ProviderDatabase.problems`;
it never stops the others from loading.

The bundled files are found through a generated index (``providers/index.json``,
written by ``scripts/ispdb_import.py``): a lookup parses only the file it
needs, once per process, so the first answer costs well under 5 ms even with
the whole of Thunderbird's ISPDB bundled. Drop-in directories are parsed
whole, cached by the files' names, sizes and modification times.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deskmail.discovery.domains import normalize, parents
from deskmail.discovery.ispdb import (
    MAX_CONFIG_BYTES,
    InvalidClientConfig,
    Provider,
    parse_client_config,
)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable  # (the import is the cost bundled_folder() avoids)


@dataclass(frozen=True)
class ProviderMatch:
    """A database entry found for a domain (or MX host), and which name matched it."""

    provider: Provider
    asked: str  # the domain (or MX host) that was looked up
    matched: str  # the database key that matched: the domain itself or a parent

    @property
    def exact(self) -> bool:
        return self.asked == self.matched


class ProviderDatabase:
    """Providers indexed by e-mail domain, by MX host domain and by server host name.

    ``providers`` are parsed entries. ``index`` (the bundled files' generated
    index) adds entries that are parsed only when a lookup first needs them;
    parsed ``providers`` win over indexed ones for the same domain.
    """

    def __init__(
        self, providers: Iterable[Provider], problems: Iterable[str] = (), *, index: BundledIndex | None = None
    ) -> None:
        self._parsed: tuple[Provider, ...] = tuple(providers)
        self._problems: list[str] = list(problems)
        self._index = index
        self._by_domain: dict[str, Provider | str] = dict(index.domains) if index else {}
        self._by_mx: dict[str, Provider | str] = dict(index.mx_domains) if index else {}
        hosts: set[str] = set(index.hosts) if index else set()
        for p in self._parsed:
            for d in p.domains:
                self._by_domain[d] = p
            for d in p.mx_domains:
                self._by_mx[d] = p
            hosts.update(s.hostname.lower() for s in (*p.incoming, *p.outgoing) if "%" not in s.hostname)
        self._server_hosts = frozenset(hosts)

    @property
    def problems(self) -> tuple[str, ...]:
        """Files that could not be used (an indexed file is only read when first needed)."""
        return tuple(self._problems)

    @property
    def providers(self) -> tuple[Provider, ...]:
        """Every entry, indexed ones first (this parses them all: tools and tests, not lookups)."""
        indexed = [p for name in (self._index.files if self._index else ()) if (p := self._resolve(name))]
        return (*indexed, *self._parsed)

    def __len__(self) -> int:
        return (len(self._index.files) if self._index else 0) + len(self._parsed)

    def _resolve(self, entry: Provider | str) -> Provider | None:
        if isinstance(entry, Provider):
            return entry
        assert self._index is not None
        provider, problem = self._index.provider(entry)
        if problem and problem not in self._problems:
            self._problems.append(problem)
        return provider

    def lookup(self, domain: str) -> ProviderMatch | None:
        """The provider for an e-mail domain: exact match first, then parent domains
        (``socal.rr.com`` falls back to ``rr.com``)."""
        asked = normalize(domain)
        for candidate in parents(asked):
            entry = self._by_domain.get(candidate)
            if entry is not None and (provider := self._resolve(entry)) is not None:
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
                entry = index.get(candidate)
                if entry is not None and (provider := self._resolve(entry)) is not None:
                    return ProviderMatch(provider, asked, candidate)
        return None

    def vouches_for(self, host: str) -> bool:
        """True when ``host`` is a server of some provider in the database."""
        return normalize(host) in self._server_hosts


INDEX_NAME = "index.json"


class BundledIndex:
    """The generated index of the bundled files (``providers/index.json``).

    Parsing every bundled file costs tens of milliseconds, more than a whole
    lookup may take; the index maps each domain, MX domain and server host to
    its file, so a lookup parses only the one file it needs (once per process).
    :func:`build_index` writes it; a test keeps it in step with the files.
    """

    def __init__(self, folder: Traversable, data: dict[str, object]) -> None:
        self.folder = folder
        files = data["files"]
        assert isinstance(files, list)
        self.files: tuple[str, ...] = tuple(str(f) for f in files)
        self.domains: dict[str, str] = _name_map(data["domains"], self.files)
        self.mx_domains: dict[str, str] = _name_map(data["mx"], self.files)
        hosts = data["hosts"]
        assert isinstance(hosts, list)
        self.hosts: frozenset[str] = frozenset(str(h) for h in hosts)
        self._cache: dict[str, tuple[Provider | None, str]] = {}

    def provider(self, name: str) -> tuple[Provider | None, str]:
        """The parsed entry of one bundled file, or ``None`` and the reason."""
        found = self._cache.get(name)
        if found is None:
            origin = f"providers/{name}"
            try:
                found = (_read(self.folder.joinpath(*name.split("/")), origin), "")
            except InvalidClientConfig as exc:
                found = (None, str(exc))
            except OSError as exc:
                found = (None, f"The mail settings file {origin} cannot be read ({exc.strerror or exc}).")
            self._cache[name] = found
        return found


def _name_map(raw: object, files: tuple[str, ...]) -> dict[str, str]:
    assert isinstance(raw, dict)
    return {str(k): files[int(v)] for k, v in raw.items()}


def bundled_files(folder: Traversable) -> list[str]:
    """The bundled files in load order: the generated ISPDB import first, then deskmail's
    own files, so deskmail's entry wins for a domain both list."""
    names: list[str] = []
    sub = folder / "ispdb"
    if sub.is_dir():
        names += sorted(f"ispdb/{f.name}" for f in sub.iterdir() if f.name.endswith(".xml"))
    names += sorted(f.name for f in folder.iterdir() if f.name.endswith(".xml"))
    return names


def build_index(folder: Traversable) -> dict[str, object]:
    """The index of the files in ``folder`` (what ``providers/index.json`` holds).

    Raises :class:`InvalidClientConfig` for a file that cannot be used: a
    bundled file must always load.
    """
    files = bundled_files(folder)
    domains: dict[str, int] = {}
    mx: dict[str, int] = {}
    hosts: set[str] = set()
    for i, name in enumerate(files):
        p = _read(folder.joinpath(*name.split("/")), f"providers/{name}")
        domains.update(dict.fromkeys(p.domains, i))
        mx.update(dict.fromkeys(p.mx_domains, i))
        hosts.update(s.hostname.lower() for s in (*p.incoming, *p.outgoing) if "%" not in s.hostname)
    return {"files": files, "domains": domains, "mx": mx, "hosts": sorted(hosts)}


def _xml_files(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.suffix == ".xml" and p.is_file())
    except OSError:
        return []


def _read(path: Path | Traversable, origin: str) -> Provider:
    if isinstance(path, Path):
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise InvalidClientConfig(origin, f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    with path.open("rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    return parse_client_config(data, origin=origin).provider


def _load(entries: Sequence[tuple[Path | Traversable, str]]) -> ProviderDatabase:
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


def bundled_folder() -> Traversable:
    """``deskmail/discovery/providers``: a plain directory in every ordinary install
    (importlib.resources, needed only for zipped packages, costs 4 ms to import)."""
    here = Path(__file__).with_name("providers")
    if here.is_dir():
        return here
    from importlib import resources

    return resources.files("deskmail.discovery") / "providers"


@functools.lru_cache(maxsize=1)
def bundled_database() -> ProviderDatabase:
    """The providers shipped with deskmail: through the generated index, each file parsed
    when first needed; without an index (a development tree), every file parsed now."""
    folder = bundled_folder()
    try:
        data = json.loads(folder.joinpath(INDEX_NAME).read_bytes())
        return ProviderDatabase((), index=BundledIndex(folder, data))
    except (OSError, ValueError, KeyError, AssertionError, IndexError):
        return _load([(folder.joinpath(*n.split("/")), f"providers/{n}") for n in bundled_files(folder)])


@functools.lru_cache(maxsize=8)
def _database_with(key: tuple[tuple[str, int, int], ...]) -> ProviderDatabase:
    bundled = bundled_database()
    extra = _load([(Path(name), name) for name, _, _ in key])
    if bundled._index is None:
        return ProviderDatabase((*bundled.providers, *extra.providers), (*bundled.problems, *extra.problems))
    return ProviderDatabase(extra.providers, (*bundled.problems, *extra.problems), index=bundled._index)


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
