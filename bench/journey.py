"""The journey simulator at scale: N merchants (default 200) live 14 months on a sandbox test clock.

Runs the simulator test (tests/billing/test_journey_simulator.py: its invariants are the pass/fail) in
pytest with the population set by environment, and prints a table of what happened and how long it took,
with the CI population (5 merchants) measured in the same run as the baseline.

    python -m bench.journey [--merchants 200] [--months 14]
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


def simulate(merchants: int, months: int, *, fresh_database: bool) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        env = {
            **os.environ,
            # Its own database (pytest makes test_<name>), so the bench never collides with a test run.
            "DATABASE_URL": urlunsplit(urlsplit(BASE_URL)._replace(path="/tollbooth_journey")),
            "TOLLBOOTH_SIM_MERCHANTS": str(merchants),
            "TOLLBOOTH_SIM_MONTHS": str(months),
            "TOLLBOOTH_SIM_REPORT": report.name,
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
        if result.returncode != 0:
            sys.stdout.write(result.stdout[-4000:] + result.stderr[-2000:])
            raise SystemExit(f"the simulator failed for {merchants} merchants (its invariants are above)")
        with open(report.name) as handle:
            return json.load(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--months", type=int, default=14)
    args = parser.parse_args()
    rows = [
        ("CI population", simulate(5, args.months, fresh_database=True)),
        ("bench population", simulate(args.merchants, args.months, fresh_database=False)),
    ]
    header = (
        f"{'run':<17}| {'merchants':>9} | {'months':>6} | {'invoices':>8} | {'ledger entries':>14} | "
        f"{'drift':>5} | {'seconds':>8} | {'s / merchant':>12}"
    )
    print("Journey simulator: test clock, live webhooks, beat tasks at each step; invariants checked at the end")
    print("-" * len(header))
    print(header)
    print("-" * len(header))
    for label, report in rows:
        print(
            f"{label:<17}| {report['merchants']:>9} | {report['months']:>6} | {report['invoices']:>8} | "
            f"{report['ledger_entries']:>14} | {report['reconciliation_differences']:>5} | "
            f"{report['seconds']:>8.1f} | {report['seconds'] / report['merchants']:>12.2f}"
        )
    print("-" * len(header))
    print("actions at scale:", ", ".join(f"{k} {v}" for k, v in sorted(rows[1][1]["actions"].items())))


if __name__ == "__main__":
    main()
