"""Discovery benchmark: provider-database latency and whole-chain times against local servers.

Figures printed:

1. **database, first lookup** — a fresh database (the generated index read,
   then the one file the answer is in parsed), median of ``--cold-runs``;
   the requirement is < 5 ms;
2. **database, parse all** — every bundled file (Thunderbird's whole ISPDB
   and deskmail's own), for reference: what a lookup no longer pays;
3. **database hit** — ``lookup_provider("socal.rr.com")`` (parent-domain
   fallback included), median and p99 over ``--lookups`` calls;
3. **chain, known domain** — ``discover("…@socal.rr.com")`` with every
   network source running against a local DNS server that answers NXDOMAIN;
4. **chain, unknown domain, nothing anywhere** — every source, local DNS says
   NXDOMAIN for everything (the common "typo in the domain" case);
5. **chain, unknown domain, silent DNS** — the DNS server never answers;
   default timeouts and deadline;
6. **chain, unknown domain, everything hangs** — every name resolves and every
   port accepts a connection and then says nothing; default timeouts and
   deadline (the worst case; must stay under 10 s);
7. **whole process** — ``deskmail discover joe@spectrum.net --json --offline``
   as a new process each time (goal: < 150 ms), ``--process-runs`` rounds, each
   round running every variant once in turn (so a change of load on a shared
   machine falls on all of them alike), after one warm-up round (which also
   writes the .pyc files, even under PYTHONDONTWRITEBYTECODE, as an install does):

   * *fast path, existing user*: the console entry point, with the data folder
     present (the fast path's compiled dataclass methods are cached there);
   * *fast path, new user*: the same without a data folder (nothing cached);
   * *full command*: the Typer application called directly
     (``deskmail.cli.main.main``), i.e. what every `discover` ran before the
     fast path;
   * *fast path, online*: the same without ``--offline`` (the network sources
     run too, against this machine's resolver);
   * with ``--compare-src DIR``, also the console entry point of another tree
     (e.g. an unpacked older commit, see bench/README.md).

   Wall time (spawn to exit) and CPU time (user + system, steadier on a shared
   machine): median and max.

All servers are the test suite's own (``tests/discovery/discoverykit.py``) on
127.0.0.1, started by this script. Examples::

    .venv/bin/python bench/discovery_bench.py --runs 5 --json discovery.json
    .venv/bin/python bench/discovery_bench.py --process-only --process-runs 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "discovery"))

from discoverykit import BlackHole, DNSServer

from deskmail.discovery import DiscoveryOptions, discover, lookup_provider
from deskmail.discovery.database import bundled_database


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def report(name: str, samples: list[float], results: dict[str, dict[str, float]]) -> None:
    samples = sorted(samples)
    median = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    results[name] = {"median_s": median, "p99_s": p99, "max_s": samples[-1], "runs": len(samples)}
    unit, scale = ("µs", 1e6) if median < 1e-3 else ("ms", 1e3) if median < 1 else ("s", 1.0)
    print(
        f"{name:<52} median {median * scale:9.2f} {unit}   p99 {p99 * scale:9.2f} {unit}   "
        f"max {samples[-1] * scale:9.2f} {unit}   (n={len(samples)})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lookups", type=int, default=10_000, help="database lookups to time")
    ap.add_argument("--cold-runs", type=int, default=20, help="fresh database parses to time")
    ap.add_argument("--runs", type=int, default=5, help="runs of each fast chain scenario")
    ap.add_argument("--slow-runs", type=int, default=1, help="runs of the silent / hanging scenarios")
    ap.add_argument("--process-runs", type=int, default=20, help="rounds of the whole-process measurements")
    ap.add_argument("--process-only", action="store_true", help="only the whole-process measurements")
    ap.add_argument("--address", default="joe@spectrum.net", help="the address of the whole-process runs")
    ap.add_argument("--compare-src", type=Path, help="also time the console entry point of this source tree")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    if not args.process_only:
        library_and_chain(args, results)
    whole_process(args, results)

    process = results["whole process: fast path, existing user"]["median_s"] < 0.150
    verdicts = [f"whole process (offline) < 150 ms: {'yes' if process else 'NO'}"]
    ok = worst = True
    if not args.process_only:
        ok = results["database, first lookup (index + one file)"]["median_s"] < 0.005
        worst = results["chain, unknown domain, every server hangs"]["max_s"] < 10.0
        verdicts[:0] = [f"database answer < 5 ms: {'yes' if ok else 'NO'}",
                        f"worst-case chain < 10 s: {'yes' if worst else 'NO'}"]
    print("\n" + ";  ".join(verdicts))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok and worst and process else 1


def library_and_chain(args: argparse.Namespace, results: dict[str, dict[str, float]]) -> None:
    """Figures 1–6: the database inside the library, and the chain against local servers."""

    def first_lookup() -> None:
        bundled_database.cache_clear()
        lookup_provider("t-online.de")

    def parse_all() -> None:
        bundled_database.cache_clear()
        bundled_database().providers  # noqa: B018 - the parse is what is timed

    report("database, first lookup (index + one file)", timed(first_lookup, args.cold_runs), results)
    parse_all()
    count = len(bundled_database().providers)
    report(f"database, parse all {count} bundled files", timed(parse_all, max(3, args.cold_runs // 4)), results)
    report(
        "database hit (socal.rr.com → rr.com)", timed(lambda: lookup_provider("socal.rr.com"), args.lookups), results
    )

    dns = DNSServer()
    hole = BlackHole()
    try:
        local = DiscoveryOptions(nameservers=("127.0.0.1",), dns_port=dns.port)
        report(
            "chain, known domain (all sources, NXDOMAIN)",
            timed(lambda: discover("bob@socal.rr.com", options=local), args.runs),
            results,
        )
        report(
            "chain, unknown domain, nothing anywhere",
            timed(lambda: discover("bob@nothing-anywhere.test", options=local), args.runs),
            results,
        )

        dns.make_silent("silent.test")
        report(
            "chain, unknown domain, silent DNS",
            timed(lambda: discover("bob@silent.test", options=local), args.slow_runs),
            results,
        )

        d = "hangs.test"
        for prefix in ("", "autoconfig.", "imap.", "mail.", "pop.", "pop3.", "smtp."):
            dns.add_host(prefix + d)
        hang = local.clone(port_overrides=dict.fromkeys((80, 443, 993, 143, 995, 110, 465, 587), hole.port))
        report(
            "chain, unknown domain, every server hangs",
            timed(lambda: discover(f"bob@{d}", options=hang), args.slow_runs),
            results,
        )
    finally:
        dns.close()
        hole.close()


FULL = "import sys; from deskmail.cli.main import main; sys.exit(main(sys.argv[1:]))"
ENTRY = "import sys; from deskmail.cli.entry import main; sys.exit(main())"  # what the console script runs


def whole_process(args: argparse.Namespace, results: dict[str, dict[str, float]]) -> None:
    """Whole-process figures of `deskmail discover ... --json`, variants taken in turn (see the docstring)."""
    with tempfile.TemporaryDirectory(prefix="deskmail-discover-bench-") as tmp:
        user, new = Path(tmp, "user"), Path(tmp, "new")
        (user / "data").mkdir(parents=True)
        new.mkdir()
        python = sys.executable
        offline = ["discover", args.address, "--json", "--offline"]
        variants: dict[str, tuple[list[str], Path, dict[str, str]]] = {
            "fast path, existing user": ([python, "-c", ENTRY, *offline], user, {}),
            "fast path, new user": ([python, "-c", ENTRY, *offline], new, {}),
            "full command (Typer)": ([python, "-c", FULL, *offline], user, {}),
            "fast path, online (no --offline)": ([python, "-c", ENTRY, *offline[:-1]], user, {}),
        }
        if args.compare_src:
            variants["console entry of --compare-src"] = (
                [python, "-c", ENTRY, *offline], user, {"PYTHONPATH": str(args.compare_src)})
        wall: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        outputs: dict[str, bytes] = {}
        print(f"\nwhole process, {args.process_runs} rounds (+1 warm-up), load before: "
              f"{os.getloadavg()[0]:.2f}")
        for round_ in range(args.process_runs + 1):
            for name, (argv, home, extra) in variants.items():
                if name == "fast path, new user" and (home / "data").exists():
                    raise SystemExit("the fast path created the data folder of a new user")
                env = {**os.environ, "DESKMAIL_HOME": str(home), **extra}
                env.pop("PYTHONDONTWRITEBYTECODE", None)  # the warm-up writes the .pyc files, as an install does
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                done = subprocess.run(argv, env=env, capture_output=True, check=True)
                elapsed = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if round_ == 0:
                    outputs[name] = done.stdout
                    continue  # the warm-up: .pyc files, page cache, the methods cache written
                wall[name].append(elapsed)
                cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        print(f"load after: {os.getloadavg()[0]:.2f}")
        same = {outputs[name] for name in ("fast path, existing user", "fast path, new user", "full command (Typer)")}
        if len(same) != 1:
            raise SystemExit("the fast path and the full command did not write the same JSON")
        for name in variants:
            report(f"whole process: {name}", wall[name], results)
            report(f"  CPU time: {name}", cpu[name], results)


if __name__ == "__main__":
    sys.exit(main())
