"""Fraud scenarios: a generated population of merchants run through the default rules, and what they caught.

    python -m bench.fraud_scenarios [--honest 1900] [--fraud-per-kind 25] [--seed 7]

Mostly honest merchants, and per fraud kind a number of operations: trial farms from one IP or one browser,
a stealth farm sharing one card, card-testing bursts, disposable emails, bots, stolen cards from far away,
chargebacks. Prints per kind what the default rules decided, then the targets: fraud caught (review or block)
>= 95 %, honest merchants blocked <= 1 % and sent to review <= 5 %, and the signup check's own time (no
password hashing) p95 < 20 ms. Runs on its own throw-away database (BENCH_DATABASE_NAME, default
tollbooth_bench_fraud).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("BENCH_DATABASE_NAME", "tollbooth_bench_fraud")

from bench.common import django_setup, fresh_database, table  # after the line above: it reads the name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--honest", type=int, default=1900)
    parser.add_argument("--fraud-per-kind", type=int, default=25)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    fresh_database()
    django_setup()
    from bench.fraud_population import population_generate, population_run

    report = population_run(population_generate(honest=args.honest, fraud_per_kind=args.fraud_per_kind, seed=args.seed))
    rows = [
        [r["kind"], r["scenarios"], r["signups"], r["allowed"], r["review"], r["blocked"], f"{r['caught']:.1%}"]
        for r in report.rows
    ]
    print(table("Default rules on the generated population", ["kind", "scenarios", "signups", "allowed", "review",
                                                                "blocked", "flagged"], rows))  # fmt: skip
    checks = [
        ["fraud caught (review or block)", f"{report.fraud_caught:.1%}", ">= 95 %", report.fraud_caught >= 0.95],
        ["honest merchants blocked", f"{report.honest_blocked:.1%}", "<= 1 %", report.honest_blocked <= 0.01],
        ["honest merchants sent to review", f"{report.honest_reviewed:.1%}", "<= 5 %", report.honest_reviewed <= 0.05],
        ["trial-farm signups caught (each)", f"{report.farm_signups_caught:.1%}", "(no target)", "-"],
        [f"signup check p50 ({report.signups} signups)", f"{report.signup_p50_ms:.2f} ms", "(no target)", "-"],
        [f"signup check p95 ({report.signups} signups)", f"{report.signup_p95_ms:.2f} ms", "< 20 ms",
         report.signup_p95_ms < 20],
    ]  # fmt: skip
    print()
    print(table("Targets", ["measure", "value", "target", "met"], [[str(c) for c in row] for row in checks]))


if __name__ == "__main__":
    main()
