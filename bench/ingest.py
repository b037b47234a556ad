"""Ingestion benchmark: POST /api/v1/usage-events through gunicorn (2 workers) vs psycopg executemany.

    python -m bench.ingest [--events 100000] [--accounts 20] [--clients 4]

For each batch size (100 and 1,000): send the whole load over HTTP with the platform token (each batch
for one account, accounts in turn, `--clients` keep-alive connections in parallel), replay the whole
load (it must add 0 rows), then empty the events table and insert the same rows with psycopg
`executemany(... ON CONFLICT DO NOTHING)` in batches of the same size over as many connections: the
limit our endpoint is measured against. Prints a table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from bench.common import PLATFORM_TOKEN, ROOT, bench_env, bench_url, django_setup, fresh_database, table


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup_accounts(n: int, anchor: datetime) -> list[int]:
    from djstripe import models as djstripe_models

    from accounts.models import Account
    from plans.models import PlanPrice

    price = PlanPrice.objects.get(plan__code="advanced", interval="month", currency="usd")
    price.stripe_price_id = price.stripe_price_id or "price_advanced_month"
    price.save(update_fields=["stripe_price_id"])
    ids = []
    for i in range(n):
        account = Account.objects.create(name=f"Bench {i}", slug=f"bench-{i}", billing_email=f"b{i}@bench.example")
        customer = djstripe_models.Customer.objects.create(
            id=f"cus_bench{i}", subscriber=account, livemode=False, stripe_data={"id": f"cus_bench{i}"}
        )
        data = {
            "id": f"sub_bench{i}",
            "status": "active",
            "billing_cycle_anchor": int(anchor.timestamp()),
            "start_date": int(anchor.timestamp()),
            "items": {"data": [{"price": {"id": price.stripe_price_id}, "quantity": 1}]},
        }
        djstripe_models.Subscription.objects.create(
            id=data["id"], customer=customer, livemode=False, stripe_data=data, created=anchor
        )
        ids.append(account.pk)
    return ids


def _batches(account_ids, total, size, at, tag):
    batches = []
    for b in range(total // size):
        account = account_ids[b % len(account_ids)]
        events = [
            {
                "account": account,
                "metric": "tickets" if i % 3 else "automated_resolutions",
                "quantity": 1 + i % 5,
                "occurred_at": (at - timedelta(seconds=i)).isoformat(),
                "idempotency_key": f"{tag}-{b}-{i}",
            }
            for i in range(size)
        ]
        batches.append(events)
    return batches


def _send_all(port, bodies, clients) -> tuple[float, dict]:
    counts = {"new": 0, "duplicate": 0, "refused": 0}
    lock = threading.Lock()
    queue = list(enumerate(bodies))
    errors = []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {PLATFORM_TOKEN}"}
        while True:
            with lock:
                if not queue:
                    break
                _, body = queue.pop()
            conn.request("POST", "/api/v1/usage-events", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                errors.append((response.status, payload[:300]))
                continue
            got = json.loads(payload)["counts"]
            with lock:
                for key in counts:
                    counts[key] += got[key]
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, first: {errors[0]}")
    return time.perf_counter() - started, counts


def _baseline(batches, period_of, clients) -> float:
    """psycopg executemany of the same rows, ON CONFLICT DO NOTHING, same batch size and concurrency."""
    import psycopg

    from billing.models import UsageEvent

    sql = (
        f"INSERT INTO {UsageEvent._meta.db_table} "
        "(account_id, idempotency_key, period_id, metric, quantity, occurred_at, received_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, now()) ON CONFLICT (account_id, idempotency_key) DO NOTHING"
    )
    rows = [
        [
            (e["account"], e["idempotency_key"], period_of[e["account"]], e["metric"], e["quantity"], e["occurred_at"])
            for e in batch
        ]
        for batch in batches
    ]
    lock = threading.Lock()

    def worker():
        with psycopg.connect(bench_url()) as conn:
            while True:
                with lock:
                    if not rows:
                        return
                    batch = rows.pop()
                with conn.cursor() as cursor:
                    cursor.executemany(sql, batch)
                conn.commit()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per batch size")
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4, help="parallel keep-alive HTTP connections")
    args = parser.parse_args()

    fresh_database()
    django_setup()
    from django.db import connection

    from billing.models import UsageEvent, UsagePeriod, UsageRollup

    now = datetime.now(tz=UTC)
    account_ids = _setup_accounts(args.accounts, anchor=now - timedelta(days=10))
    port = _free_port()
    server = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "gunicorn"),
            "config.wsgi",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=bench_env(),
    )
    rows = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        # Warm both workers (imports, connections) before timing.
        _send_all(port, [json.dumps({"events": b}) for b in _batches(account_ids, 200, 100, now, "warm")], 4)
        for size in (100, 1000):
            batches = _batches(account_ids, args.events, size, now - timedelta(minutes=5), f"s{size}")
            bodies = [json.dumps({"events": batch}) for batch in batches]
            before = UsageEvent.objects.count()
            seconds, counts = _send_all(port, bodies, args.clients)
            inserted = UsageEvent.objects.count() - before
            replay_seconds, replay = _send_all(port, bodies, args.clients)
            replay_added = UsageEvent.objects.count() - before - inserted
            used = sum(UsageRollup.objects.values_list("used", flat=True))
            period_of = dict(UsagePeriod.objects.values_list("account_id", "id"))
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {UsageEvent._meta.db_table}")
            base_seconds = _baseline(batches, period_of, args.clients)
            base_rows = UsageEvent.objects.count()
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {UsageEvent._meta.db_table}")
                cursor.execute(f"UPDATE {UsageRollup._meta.db_table} SET used = 0")
            http_rate = args.events / seconds
            base_rate = args.events / base_seconds
            assert counts["new"] == inserted == args.events == base_rows, (counts, inserted, base_rows)
            assert replay["duplicate"] == args.events and replay_added == 0, (replay, replay_added)
            rows.append(
                [
                    size,
                    f"{args.events:,}",
                    f"{seconds:.2f}",
                    f"{http_rate:,.0f}",
                    f"{base_seconds:.2f}",
                    f"{base_rate:,.0f}",
                    f"{100 * http_rate / base_rate:.0f} %",
                    f"{args.events / replay_seconds:,.0f}",
                    replay_added,
                    f"{used:,}",
                ]
            )
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(
        table(
            f"Usage ingestion: gunicorn 2 workers, {args.clients} keep-alive clients, {args.accounts} accounts, "
            f"{os.cpu_count()} CPUs",
            [
                "batch",
                "events",
                "HTTP s",
                "HTTP ev/s",
                "executemany s",
                "executemany ev/s",
                "HTTP / limit",
                "replay ev/s",
                "rows added by replay",
                "rollup units",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
