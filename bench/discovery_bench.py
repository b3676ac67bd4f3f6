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
7. **whole process** — ``deskmail discover bob@socal.rr.com --json`` with
   ``--offline`` and without (then the network sources run too, against this
   machine's resolver), as a new process each time (goal: < 150 ms).

All servers are the test suite's own (``tests/discovery/discoverykit.py``) on
127.0.0.1, started by this script. Example::

    .venv/bin/python bench/discovery_bench.py --runs 5 --json discovery.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
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
        f"{name:<48} median {median * scale:9.2f} {unit}   p99 {p99 * scale:9.2f} {unit}   "
        f"max {samples[-1] * scale:9.2f} {unit}   (n={len(samples)})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lookups", type=int, default=10_000, help="database lookups to time")
    ap.add_argument("--cold-runs", type=int, default=20, help="fresh database parses to time")
    ap.add_argument("--runs", type=int, default=5, help="runs of each fast chain scenario")
    ap.add_argument("--slow-runs", type=int, default=1, help="runs of the silent / hanging scenarios")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    results: dict[str, dict[str, float]] = {}

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

    deskmail = Path(sys.executable).with_name("deskmail")
    for flags in (["--offline"], []):
        argv = [str(deskmail), "discover", "bob@socal.rr.com", "--json", *flags]
        report(
            "whole process: deskmail discover --json " + " ".join(flags),
            timed(lambda a=argv: subprocess.run(a, check=True, capture_output=True), args.runs),
            results,
        )

    ok = results["database, first lookup (index + one file)"]["median_s"] < 0.005
    worst = results["chain, unknown domain, every server hangs"]["max_s"] < 10.0
    process = results["whole process: deskmail discover --json --offline"]["median_s"] < 0.150
    print(
        f"\ndatabase answer < 5 ms: {'yes' if ok else 'NO'};  worst-case chain < 10 s: {'yes' if worst else 'NO'};  "
        f"whole process (offline) < 150 ms: {'yes' if process else 'NO'}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok and worst else 1


if __name__ == "__main__":
    sys.exit(main())
