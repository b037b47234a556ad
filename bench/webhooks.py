"""Stripe webhooks benchmark: our intake (verify, store once, queue) against a view that only verifies the
signature, then the Celery worker applying the events, with Stripe's reads counted at the sandbox.

    python -m bench.webhooks [--events 2000] [--accounts 50] [--clients 8] [--duplicates 0.1]

What it does, and why:
- Its own everything: a database cloned from a migrated template (bench.webhooks_setup.fresh_database), the sandbox,
  a redis-server, gunicorn (`--workers` gthread workers x `--threads`, keep-alive: Stripe reuses connections) serving
  the product plus the baseline view (bench/webhooks_urls.py, routed in the bench only), and a real Celery worker
  (`celery -A config worker`, prefork, `--concurrency`). No beat: the sweeper would hide a lost task, and every event
  must be applied by its first task. Every process is stopped at the end.
- Real events of real objects: `--accounts` merchants (customers via `customer_ensure`, monthly subscriptions) live
  month after month on the sandbox (subscription updates, renewals paid, and failing cards on one in five: failed
  renewals, past due, paid at Stripe's retry) until it has recorded `--events` events of the types the issue names
  (customer.subscription.updated, invoice.paid, invoice.payment_failed). Handlers re-read those objects as they are.
- The sandbox delivers one event at a time per endpoint, which would measure the sandbox: our endpoint is registered
  at the sandbox (the product's `webhook_endpoint_ensure`) and disabled there, and the bench delivers the recorded
  events itself, signed as Stripe signs them (and the sandbox), pretty-printed as Stripe sends them, from `--clients`
  keep-alive connections. The stream is shuffled across and within customers, and `--duplicates` of the events are
  sent twice: half right behind the first copy (both in flight at once), half later (a redelivery).
- The baseline (bench/webhooks_urls.py) does what any webhook view must before its own work: the same query for the
  endpoint's secret, the signature check, the JSON parse; it stores and queues nothing. Both go through the
  product's whole middleware stack, in the same gunicorn.
- One run, same stream: first the baseline (the worker idle), then our intake with the worker applying the events
  as they are acknowledged, on the same 2 cores, as one production box would (a worker at `nice 10` was
  measured too: fewer acks/s and fewer events applied per second than at the web's priority). Acks/s counts
  every answer (re-sends too); latency is each POST's round trip at the client.
- Processed events/s: the unique events over the time from the first ack to the last `processed_at`, polled in the
  database. Stripe reads per event: the sandbox's GET requests from just before our intake's run until every event
  is applied, over the events applied (the bench reads nothing from Stripe meanwhile).
- Duplicates applied (must be 0): stored rows beyond one per event id, intake answers saying "new" more than once
  per id, handler runs beyond one per (event, handler) (nothing fails and nothing is retried here, so a second
  attempt is a second application), receipts beyond one per invoice or for an invoice never paid.
- An event the worker applied in one turn with a later event of the same type and object is covered by it (no
  outcome rows of its own, `covered_by`): it counts as applied when the later one's handlers all succeeded, and
  the table says how many were.
- And the end state, since every handler re-reads its object: each subscription the events name is in the mirror
  what Stripe says now (status, metadata, period end), its account active when it is, however shuffled the stream.
- Exit status 1 only on a correctness failure (a duplicate applied, an event not stored or not fully applied, a
  mirror behind Stripe); missed speed targets are printed as "not met".
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench import common
from bench import webhooks_setup as setup

STALL_SECONDS = 60  # no event applied for this long: the rest never will be


@dataclass
class Run:
    seconds: float = 0.0
    first_ack: float = 0.0  # time.time() of the first answer
    latencies: list[float] = field(default_factory=list)
    new_ids: Counter = field(default_factory=Counter)  # answers saying "not a duplicate", per event id
    errors: list = field(default_factory=list)

    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def stream_build(count: int, *, duplicates: float, rng: random.Random) -> list[int]:
    """Event indexes in delivery order: all shuffled, `duplicates` of them twice (alternately next to the first
    copy and at a random later place)."""
    order = list(range(count))
    rng.shuffle(order)
    keyed = [(float(position), index) for position, index in enumerate(order)]
    for n, position in enumerate(sorted(rng.sample(range(count), round(count * duplicates)))):
        later = position + 0.5 if n % 2 else rng.uniform(position, count)
        keyed.append((later, order[position]))
    return [index for _, index in sorted(keyed)]


def _signature(payload: bytes, secret: str) -> str:
    stamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def deliver(port: int, path: str, bodies: list[bytes], stream: list[int], *, secret: str, clients: int) -> Run:
    """POST the stream, signed at sending time, from `clients` keep-alive connections. An answer other than 200, or
    none (the connection failed: the client opens another), is kept in `errors`; the event is not sent again."""
    run, lock, pending = Run(), threading.Lock(), iter(stream)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                index = next(pending, None)
            if index is None:
                break
            body = bodies[index]
            headers = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": _signature(body, secret)}
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                status, payload = response.status, response.read()
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status, payload = None, repr(error).encode()
            elapsed = time.perf_counter() - started
            answer = json.loads(payload) if status == 200 else {}
            with lock:
                run.first_ack = run.first_ack or time.time()
                run.latencies.append(elapsed)
                if status != 200:
                    run.errors.append((status, payload[:300]))
                elif answer.get("duplicate") is False:
                    run.new_ids[answer["id"]] += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - started
    return run


def processed_wait(expected: int) -> tuple[float | None, int]:
    """Poll until `expected` events are processed (or none is for STALL_SECONDS): (the last processed_at as unix
    time or None, events not processed). Only the bench's events are stored: the warm-up bodies are refused."""
    from django.db.models import Max

    from billing.models import StripeEvent

    seen, moved = -1, time.monotonic()
    while True:
        done = StripeEvent.objects.filter(processed_at__isnull=False).count()
        if done != seen:
            seen, moved = done, time.monotonic()
        if done >= expected or time.monotonic() - moved > STALL_SECONDS:
            break
        time.sleep(0.2)
    last = StripeEvent.objects.aggregate(last=Max("processed_at"))["last"]
    return (last.timestamp() if last else None), max(0, expected - done)


def correctness(events: list[dict], ours: Run) -> tuple[dict, list[str], dict]:
    """The duplicates applied, by kind; what was not applied (lines to print); each handler's mean time (ms)."""
    from billing.models import HandlingStatus, Receipt, StripeEvent, StripeEventHandling
    from billing.stripe.handlers import handlers_for

    ids = {event["id"] for event in events}
    stored = Counter(StripeEvent.objects.values_list("stripe_id", flat=True))
    # An event covered by a later one of the same type and object (applied in the same turn) has no outcome rows:
    # the later one's handlers did its work. It counts as applied when the event that covers it is.
    covering = dict(
        StripeEvent.objects.filter(covered_by__isnull=False).values_list("stripe_id", "covered_by__stripe_id")
    )
    handlings = {
        (h["event__stripe_id"], h["handler"]): h
        for h in StripeEventHandling.objects.values(
            "event__stripe_id", "handler", "status", "attempts", "last_error", "started_at", "finished_at"
        )
    }
    spent = {}
    for h in handlings.values():
        if h["started_at"] and h["finished_at"]:
            spent.setdefault(h["handler"], []).append((h["finished_at"] - h["started_at"]).total_seconds())
    times = {name: 1000 * sum(seconds) / len(seconds) for name, seconds in spent.items()}
    invoices = [event["data"]["object"] for event in events if event["type"] == "invoice.paid"]
    paid = {invoice["id"] for invoice in invoices if invoice["amount_paid"]}
    receipts = Counter(Receipt.objects.values_list("stripe_invoice_id", flat=True))
    duplicates = {
        "stored twice": sum(n - 1 for n in stored.values()),
        "intake said new twice": sum(n - 1 for n in ours.new_ids.values()),
        "handler run again": sum(h["attempts"] - 1 for h in handlings.values() if h["attempts"] > 1),
        "receipt twice": sum(n - 1 for n in receipts.values()),
        "receipt for an unpaid invoice": len(set(receipts) - paid),
    }
    problems = [f"{len(ids - set(stored))} events never stored"] if ids - set(stored) else []
    errors = Counter()
    for event in events:
        for handler in handlers_for(event["type"]):
            found = handlings.get((covering.get(event["id"], event["id"]), handler.name))
            if found is None or found["status"] != HandlingStatus.SUCCEEDED:
                last = (found["last_error"].strip().splitlines() or ["?"])[-1] if found else "never run"
                errors[f"{event['type']} {handler.name}: {found['status'] if found else 'missing'}: {last[:150]}"] += 1
    problems += [f"{n} x {what}" for what, n in errors.most_common(8)]
    return duplicates, problems, times, len(covering)


def mirror_behind(events: list[dict]) -> list[str]:
    """Subscriptions the events named whose mirror (or account status) is not Stripe's state now: however shuffled,
    applying every event must end there, since each handler re-reads the object. Read after the reads are counted."""
    from djstripe import models as djstripe_models

    from billing.stripe.client import stripe_client
    from billing.stripe.objects import invoice_subscription_id

    named = {e["data"]["object"]["id"] for e in events if e["type"].startswith("customer.subscription.")}
    named |= {invoice_subscription_id(e["data"]["object"]) for e in events if e["type"].startswith("invoice.")}
    named.discard(None)  # an invoice of no subscription
    mirrored = djstripe_models.Subscription.objects.filter(id__in=named).select_related("customer__subscriber")
    behind = [f"{len(named) - len(mirrored)} subscriptions never mirrored"] if len(mirrored) < len(named) else []
    for subscription in mirrored:
        now, ours = stripe_client().v1.subscriptions.retrieve(subscription.id).to_dict(), subscription.stripe_data
        for name, theirs, mine in [
            ("status", now["status"], ours["status"]),
            ("metadata", now["metadata"], ours["metadata"]),
            ("period end", _period_end(now), _period_end(ours)),
        ]:
            if mine != theirs:
                behind.append(f"subscription {subscription.id}: {name} {mine!r} in the mirror, {theirs!r} at Stripe")
        account = subscription.customer.subscriber
        if now["status"] == "active" and account.status != "active":
            behind.append(f"account {account.pk} is {account.status}, its subscription {subscription.id} is active")
    return behind


def _period_end(subscription: dict) -> int:
    return subscription["items"]["data"][0]["current_period_end"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="distinct events delivered")
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8, help="parallel keep-alive HTTP connections")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of the events sent twice")
    parser.add_argument("--failing", type=float, default=0.2, help="share of merchants whose card fails at times")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (gthread)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    # One per core: applying is CPU-bound here, and 8 processes applied no more per second than 2 while taking
    # two thirds of the intake's acks/s.
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()

    common.BENCH_DB = os.environ.get("BENCH_DATABASE_NAME", "tb_whbench")
    processes = setup.Processes(Path(tempfile.mkdtemp(prefix="tb_whbench-")))
    try:
        result = _run(args, processes)
    except BaseException:
        print(f"Logs of the bench's processes: {processes.folder}", file=sys.stderr)
        raise
    finally:
        processes.stop()
    status = _report(args, *result)
    if status:
        print(f"Logs of the bench's processes: {processes.folder}")
    else:
        shutil.rmtree(processes.folder, ignore_errors=True)
    sys.exit(status)


def _run(args, processes: setup.Processes):
    started = time.monotonic()
    sandbox = processes.sandbox()
    os.environ.update({"STRIPE_API_HOST": sandbox, "STRIPE_TEST_SECRET_KEY": setup.API_KEY})
    setup.fresh_database()
    common.django_setup()
    import stripe

    stripe.api_base = sandbox  # dj-stripe's own calls go through the module-level base
    port = setup.free_port()
    endpoint = setup.endpoint_register(base_url=f"http://127.0.0.1:{port}")
    merchants = setup.merchants_create(args.accounts, failing_share=args.failing)
    events = setup.activity_record(sandbox, merchants, wanted=args.events)
    print(f"Set up in {time.monotonic() - started:.0f} s: {len(events)} events, {len(merchants)} merchants", flush=True)

    processes.env = {
        **common.bench_env(),
        "STRIPE_API_HOST": sandbox,
        "STRIPE_TEST_SECRET_KEY": setup.API_KEY,
        "CELERY_BROKER_URL": processes.broker(),
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        "PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges",
    }
    processes.gunicorn(port, workers=args.workers, threads=args.threads)
    processes.worker(concurrency=args.concurrency)
    bodies = [json.dumps(event, indent=2).encode() for event in events]
    stream = stream_build(len(bodies), duplicates=args.duplicates, rng=random.Random(args.seed))
    ours_path = f"/stripe/webhook/{endpoint.djstripe_uuid}/"
    bare_path = setup.BARE_PATH.format(uuid=endpoint.djstripe_uuid)
    # Warm every worker thread (imports, connections) on both paths: signed bodies that are not events are
    # verified, then refused by our intake with a 400, so nothing is stored.
    warm = [json.dumps({"warm": n}).encode() for n in range(20 * args.workers * args.threads)]
    for path in (bare_path, ours_path):
        deliver(port, path, warm, list(range(len(warm))), secret=endpoint.secret, clients=args.clients)
    baseline = deliver(port, bare_path, bodies, stream, secret=endpoint.secret, clients=args.clients)
    setup.sandbox_call(sandbox, "POST", "/_sandbox/requests", {"reset": "true"})
    ours = deliver(port, ours_path, bodies, stream, secret=endpoint.secret, clients=args.clients)
    last_processed, unprocessed = processed_wait(len(events))
    reads = setup.sandbox_call(sandbox, "GET", "/_sandbox/requests")["counts"]
    duplicates, problems, times, covered = correctness(events, ours)
    problems += mirror_behind(events)
    return events, stream, baseline, ours, last_processed, unprocessed, reads, duplicates, problems, times, covered


def _report(
    args, events, stream, baseline, ours, last_processed, unprocessed, reads, duplicates, problems, times, covered
):
    unique = len(events)
    processed = unique - unprocessed
    get_reads = {route: n for route, n in reads.items() if route.startswith("GET ")}
    per_event = sum(get_reads.values()) / max(processed, 1)
    process_rate = processed / (last_processed - ours.first_ack) if last_processed and processed else 0.0
    applied_twice = sum(duplicates.values())
    share = ours.rate() / baseline.rate()

    def met(ok: bool) -> str:
        return "met" if ok else "NOT MET"

    rows = [
        ["acks/s, signature-only view (baseline)", f"{baseline.rate():,.0f}", "", ""],
        ["acks/s, our intake", f"{ours.rate():,.0f} ({100 * share:.0f} %)", ">= 50 % of baseline", met(share >= 0.5)],
        ["intake latency p50 / p99, ms", f"{ours.percentile(0.5):.1f} / {ours.percentile(0.99):.1f}", "", ""],
        ["baseline latency p50 / p99, ms", f"{baseline.percentile(0.5):.1f} / {baseline.percentile(0.99):.1f}", "", ""],
        ["processed events/s (first ack to last)", f"{process_rate:,.0f}", ">= 200", met(process_rate >= 200)],
        ["Stripe reads per event", f"{per_event:.2f}", "<= 1", met(per_event <= 1)],
        ["duplicates applied", applied_twice, "0", "ok" if not applied_twice else "FAILED"],
        ["events fully applied", f"{processed:,} / {unique:,}", "all", "ok" if not unprocessed else "FAILED"],
        ["  of which covered by a later event of their object", f"{covered:,}", "", ""],
        ["answers other than 200 (ours / baseline)", f"{len(ours.errors)} / {len(baseline.errors)}", "0", ""],
    ]
    title = (
        f"Stripe webhooks: {unique:,} events + {len(stream) - unique:,} re-sent, {args.accounts} accounts, "
        f"{args.clients} clients, gunicorn {args.workers}x{args.threads} gthread, Celery prefork {args.concurrency}, "
        f"{os.cpu_count()} CPUs"
    )
    print(common.table(title, ["", "value", "target", ""], rows))
    kinds = Counter(event["type"] for event in events)
    print("events:", ", ".join(f"{kind} {n:,}" for kind, n in kinds.most_common()))
    busiest = sorted(reads.items(), key=lambda item: -item[1])
    print("Stripe requests while applying:", ", ".join(f"{route} {n:,}" for route, n in busiest))
    slowest = sorted(times.items(), key=lambda item: -item[1])
    print("handler time, mean ms:", ", ".join(f"{name} {ms:.0f}" for name, ms in slowest))
    if applied_twice:
        print("duplicates applied:", ", ".join(f"{what} {n}" for what, n in duplicates.items() if n))
    for line in problems + [f"{status} {body!r}" for status, body in ours.errors[:5]]:
        print("problem:", line)
    return 1 if applied_twice or unprocessed or problems else 0


if __name__ == "__main__":
    main()
