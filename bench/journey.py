"""The journey simulator at scale: N merchants (default 300) live 14 months on sandbox test clocks.

Runs the model-based simulator (tests/billing/test_journey_simulator.py: the independent oracle and its other
invariants are the pass/fail) in pytest with the population set by environment, and prints a table of what
happened and how long it took, with the CI population (4 merchants) measured in the same run as the baseline.
A failing run still prints its table, its seed and where the details are (the JSON report, kept).

The population runs in shards (default: one per CPU core), each a pytest process of its own with its own
sandbox, test clock and database, side by side: merchants never meet (each has its own customer, subscription
and usage), so a shard is a population of its own, and shard k of seed S replays alone with
`TOLLBOOTH_SIM_SEED=S+k TOLLBOOTH_SIM_MERCHANTS=<its merchants>`.

    python -m bench.journey [--merchants 300] [--months 14] [--seed N] [--shards K]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

from bench.common import BASE_URL, ROOT

CI_MERCHANTS = 4


def simulate(merchants: int, months: int, *, seed: int, shards: int = 1) -> dict:
    """Run the population in `shards` processes at once and add up their reports."""
    sizes = [merchants // shards + (1 if k < merchants % shards else 0) for k in range(shards)]
    started = time.monotonic()
    running = [_start(size, months, seed=seed + k, database=f"_journey{k}") for k, size in enumerate(sizes) if size]
    reports = [_finish(*shard) for shard in running]
    total = {
        "seed": seed,
        "shards": len(reports),
        "passed": all(r["passed"] for r in reports),
        "report_files": [r["report_file"] for r in reports if not r["passed"]],
        "failed_seeds": [r["seed"] for r in reports if not r["passed"]],
        "seconds": round(time.monotonic() - started, 1),
    }
    for name in ("merchants", "invoices", "ledger_entries", "oracle_differences"):
        total[name] = sum(r[name] for r in reports)
    total["months"] = months
    for name in ("findings", "steps", "difference_kinds"):
        total[name] = dict(sum((Counter(r[name]) for r in reports), Counter()))
    return total


def _start(merchants: int, months: int, *, seed: int, database: str):
    handle, report = tempfile.mkstemp(suffix=".json", prefix=f"journey-{merchants}-{seed}-")
    os.close(handle)
    env = {
        **os.environ,
        # Its own database (pytest makes test_<name>), so the bench never collides with a test run or
        # another shard. Named after DATABASE_URL's, so two worktrees' benches never share one.
        "DATABASE_URL": urlunsplit(urlsplit(BASE_URL)._replace(path=urlsplit(BASE_URL).path + database)),
        "TOLLBOOTH_SIM_MERCHANTS": str(merchants),
        "TOLLBOOTH_SIM_MONTHS": str(months),
        "TOLLBOOTH_SIM_REPORT": report,
        "TOLLBOOTH_SIM_SEED": str(seed),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/billing/test_journey_simulator.py",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:logging",  # the log capture of a 200-merchant run is large and not looked at
        "--create-db",
    ]
    output = open(report.removesuffix(".json") + ".log", "w+")  # noqa: SIM115 (closed by _finish)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
    return process, report, output


def _finish(process, report_name: str, output) -> dict:
    returncode = process.wait()
    output.seek(0)
    tail = output.read()[-6000:]
    output.close()
    try:
        with open(report_name) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        sys.stdout.write(tail)
        raise SystemExit(f"the simulator crashed ({report_name}; see above)") from None
    data["passed"] = returncode == 0
    data["report_file"] = report_name
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=300)
    parser.add_argument("--months", type=int, default=14)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--shards", type=int, default=os.cpu_count() or 1, help="processes side by side")
    args = parser.parse_args()
    rows = [
        ("CI population", simulate(CI_MERCHANTS, args.months, seed=args.seed)),
        ("bench population", simulate(args.merchants, args.months, seed=args.seed, shards=args.shards)),
    ]
    print_table(rows)


def print_table(rows: list[tuple[str, dict]]) -> None:
    header = (
        f"{'run':<17}| {'merchants':>9} | {'months':>6} | {'invoices':>8} | {'ledger entries':>14} | "
        f"{'oracle diffs':>12} | {'other findings':>14} | {'shards':>6} | {'seconds':>8} | {'s / merchant':>12}"
    )
    print("Journey simulator: test clock, live webhooks, beat at every boundary; the independent oracle at the end")
    print("-" * len(header))
    print(header)
    print("-" * len(header))
    for label, report in rows:
        others = sum(count for name, count in report["findings"].items() if name != "oracle")
        print(
            f"{label:<17}| {report['merchants']:>9} | {report['months']:>6} | {report['invoices']:>8} | "
            f"{report['ledger_entries']:>14} | {report['oracle_differences']:>12} | {others:>14} | "
            f"{report['shards']:>6} | "
            f"{report['seconds']:>8.1f} | {report['seconds'] / report['merchants']:>12.2f}"
        )
    print("-" * len(header))
    for label, report in rows:
        verdict = (
            "passed"
            if report["passed"]
            else f"FAILED: seeds {report['failed_seeds']} (details: {', '.join(report['report_files'])})"
        )
        shards = f"s {report['seed']}..{report['seed'] + report['shards'] - 1}" if report["shards"] > 1 else ""
        print(f"{label}: seed{shards or ' ' + str(report['seed'])}, {verdict}")
        print("  steps:", ", ".join(f"{k} {v}" for k, v in report["steps"].items()))
        if report["difference_kinds"]:
            print("  oracle differences by kind:", ", ".join(f"{k} {v}" for k, v in report["difference_kinds"].items()))
        found = {name: count for name, count in report["findings"].items() if count}
        if found:
            print("  findings:", ", ".join(f"{k} {v}" for k, v in found.items()))


if __name__ == "__main__":
    main()
