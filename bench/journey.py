"""The journey simulator at scale: N merchants (default 300) live 14 months on a sandbox test clock.

Runs the model-based simulator (tests/billing/test_journey_simulator.py: the independent oracle and its other
invariants are the pass/fail) in pytest with the population set by environment, and prints a table of what
happened and how long it took, with the CI population (4 merchants) measured in the same run as the baseline.
A failing run still prints its table, its seed and where the details are (the JSON report, kept).

    python -m bench.journey [--merchants 300] [--months 14] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit, urlunsplit

from bench.common import BASE_URL, ROOT

CI_MERCHANTS = 4


def simulate(merchants: int, months: int, *, fresh_database: bool, seed: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", prefix=f"journey-{merchants}-", delete=False) as report:
        env = {
            **os.environ,
            # Its own database (pytest makes test_<name>), so the bench never collides with a test run.
            # Named after DATABASE_URL's, so two worktrees' benches never share one.
            "DATABASE_URL": urlunsplit(urlsplit(BASE_URL)._replace(path=urlsplit(BASE_URL).path + "_journey")),
            "TOLLBOOTH_SIM_MERCHANTS": str(merchants),
            "TOLLBOOTH_SIM_MONTHS": str(months),
            "TOLLBOOTH_SIM_REPORT": report.name,
            "TOLLBOOTH_SIM_SEED": str(seed),
        }
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/billing/test_journey_simulator.py",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:logging",  # the log capture of a 200-merchant run is large and not looked at
                "--create-db" if fresh_database else "--reuse-db",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        try:
            with open(report.name) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            sys.stdout.write(result.stdout[-4000:] + result.stderr[-2000:])
            raise SystemExit(f"the simulator crashed for {merchants} merchants (see above)") from None
        data["passed"] = result.returncode == 0
        data["report_file"] = report.name
        return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=300)
    parser.add_argument("--months", type=int, default=14)
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()
    rows = [
        ("CI population", simulate(CI_MERCHANTS, args.months, fresh_database=True, seed=args.seed)),
        ("bench population", simulate(args.merchants, args.months, fresh_database=False, seed=args.seed)),
    ]
    print_table(rows)


def print_table(rows: list[tuple[str, dict]]) -> None:
    header = (
        f"{'run':<17}| {'merchants':>9} | {'months':>6} | {'invoices':>8} | {'ledger entries':>14} | "
        f"{'oracle diffs':>12} | {'other findings':>14} | {'seconds':>8} | {'s / merchant':>12}"
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
            f"{report['seconds']:>8.1f} | {report['seconds'] / report['merchants']:>12.2f}"
        )
    print("-" * len(header))
    for label, report in rows:
        verdict = "passed" if report["passed"] else f"FAILED (details: {report['report_file']})"
        print(f"{label}: seed {report['seed']}, {verdict}")
        print("  steps:", ", ".join(f"{k} {v}" for k, v in report["steps"].items()))
        if report["difference_kinds"]:
            print("  oracle differences by kind:", ", ".join(f"{k} {v}" for k, v in report["difference_kinds"].items()))
        found = {name: count for name, count in report["findings"].items() if count}
        if found:
            print("  findings:", ", ".join(f"{k} {v}" for k, v in found.items()))


if __name__ == "__main__":
    main()
