"""The webhook bench's set-up: its own processes, a database cloned from a migrated template, and merchants whose
Stripe activity the sandbox records as events (bench.webhooks delivers them).

Nothing here imports Django at module level: gunicorn imports this module for `bench_wsgi()` before Django is set up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import common

API_KEY = "sk_test_tollboothWebhookBench0000000000"
EVENT_TYPES = ("customer.subscription.updated", "invoice.paid", "invoice.payment_failed")
BARE_PATH = "/bench/signature-only/{uuid}/"  # bench/webhooks_urls.py
DAY = 86_400


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bench_wsgi():
    """gunicorn's app (`bench.webhooks_setup:bench_wsgi()`): the product's, with bench/webhooks_urls.py as urlconf.

    Settings do not read ROOT_URLCONF from the environment, and config/urls.py stays as it is, so the urlconf is set
    here, in the bench's gunicorn only, before the first request builds the resolver."""
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    settings.ROOT_URLCONF = "bench.webhooks_urls"
    return application


# --- processes ---------------------------------------------------------------------------------------------


class Processes:
    """The bench's children (sandbox, redis-server, gunicorn, Celery worker), each logging to a file of `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.env: dict = {}

    def _start(self, name: str, command: list[str], env: dict | None = None, **kwargs) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, cwd=common.ROOT, env=env or os.environ, stdout=log, stderr=subprocess.STDOUT, **kwargs
        )
        log.close()
        self.children.append((name, process))
        return process

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait(self, name: str, ready, timeout: float = 90) -> None:
        process = dict(self.children)[name]
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start (exit code {process.poll()}):\n{self.log(name)[-3000:]}")
            time.sleep(0.1)

    def sandbox(self) -> str:
        port = free_port()
        self._start("sandbox", [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(port)])
        self._wait("sandbox", lambda: "listening on" in self.log("sandbox"))
        return f"http://127.0.0.1:{port}"

    def broker(self) -> str:
        """A redis-server of the bench's own (saves nothing), else an empty database of the local Redis."""
        import redis

        if shutil.which("redis-server"):
            port = free_port()
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            self._start("redis", [*command, "--dir", str(self.folder)])
            self._wait("redis", lambda: _redis_answers(f"redis://127.0.0.1:{port}/0"))
            return f"redis://127.0.0.1:{port}/0"
        for number in range(15, 0, -1):  # never one holding keys: another run's or another engineer's
            url = f"redis://127.0.0.1:6379/{number}"
            if _redis_answers(url) and redis.Redis.from_url(url).dbsize() == 0:
                return url
        raise SystemExit("No redis-server to start and no empty database on 127.0.0.1:6379.")

    def gunicorn(self, port: int, *, workers: int, threads: int) -> None:
        command = [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "bench.webhooks_setup:bench_wsgi()"]
        command += ["--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads)]
        command += ["--bind", f"127.0.0.1:{port}", "--keep-alive", "30", "--log-level", "warning"]
        self._start("gunicorn", command, self.env)
        self._wait("gunicorn", lambda: _port_answers(port))

    def worker(self, *, concurrency: int) -> None:
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork"]
        command += ["--concurrency", str(concurrency), "-n", "whbench@%h", "--loglevel", "INFO"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]  # one worker: nobody to talk to
        self._start("worker", command, self.env)
        self._wait("worker", lambda: " ready." in self.log("worker"))

    def stop(self) -> None:
        """Each in turn, the last started first: the worker finishes its task while its broker is still up."""
        for _, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:  # a warm shutdown waiting for a long task: do not wait for it
                process.kill()
                process.wait(timeout=20)


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _port_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- database ----------------------------------------------------------------------------------------------


def fresh_database() -> None:
    """bench.common.fresh_database, migrating once: dj-stripe's migrations take one to two minutes here, so the
    migrated, seeded database is kept as `<bench db>_template`, tagged with a fingerprint of the migrations and the
    pinned requirements, rebuilt when they change, and cloned for each run."""
    import psycopg

    template = f"{common.BENCH_DB}_template"
    fingerprint = _migrations_fingerprint()
    parts = urlsplit(common.BASE_URL)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        found = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [template]
        ).fetchone()
        if found is None or found[0] != fingerprint:
            print(f"Migrating the template database {template} (once per change of the migrations)…", flush=True)
            conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{template}"')
            env = {**common.bench_env(), "DATABASE_URL": urlunsplit(parts._replace(path=f"/{template}"))}
            for command in (["migrate", "--verbosity", "0"], ["seed_demo", "--catalog-only"]):
                subprocess.run(
                    [sys.executable, "manage.py", *command],
                    cwd=common.ROOT,
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            conn.execute(f"COMMENT ON DATABASE \"{template}\" IS '{fingerprint}'")  # hex digits only
        conn.execute(f'DROP DATABASE IF EXISTS "{common.BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{common.BENCH_DB}" TEMPLATE "{template}"')


def _migrations_fingerprint() -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    files = sorted(common.ROOT.glob("*/migrations/*.py"))
    files += [common.ROOT / "requirements.txt", common.ROOT / "plans" / "demo_catalog.py"]
    for path in files:
        digest.update(str(path.relative_to(common.ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# --- merchants and their Stripe activity --------------------------------------------------------------------


@dataclass
class Merchant:
    account_id: int
    customer_id: str
    subscription_id: str
    failing_card: str | None  # a card that attaches and then declines every charge; None: the merchant always pays


def sandbox_call(base: str, method: str, path: str, params: list | dict | None = None) -> dict:
    """The sandbox's own helpers and raw API reads (events as Stripe sends them): plain HTTP, form-encoded."""
    encoded = urllib.parse.urlencode(params or {}, doseq=True)
    url, data = base + path, None
    if method == "GET" and encoded:
        url += "?" + encoded
    elif method == "POST":
        data = encoded.encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def endpoint_register(*, base_url: str):
    """Our endpoint, registered at Stripe and mirrored with its secret by the product's code, then disabled at the
    sandbox: the bench delivers the events itself, with its own clients, and the sandbox delivers nothing."""
    from billing.stripe.client import stripe_client
    from billing.stripe.endpoints import webhook_endpoint_ensure

    endpoint = webhook_endpoint_ensure(base_url=base_url)
    stripe_client().v1.webhook_endpoints.update(endpoint.id, params={"disabled": True})
    return endpoint


def merchants_create(count: int, *, failing_share: float) -> list[Merchant]:
    """`count` accounts, each with a Stripe customer (the product's `customer_ensure`), a card and a monthly
    subscription mirrored as a checkout's webhooks would leave it; every 1/failing_share-th one also gets a failing
    card, which bench rounds switch to on every other renewal."""
    from django.core.management import call_command

    from accounts.models import Account
    from billing.stripe.client import stripe_client
    from billing.stripe.customers import customer_ensure
    from billing.subscriptions.sync import subscription_refresh
    from plans.models import PlanPrice

    call_command("sync_plans", stdout=open(os.devnull, "w"))  # noqa: SIM115 (closed with the process)
    prices = list(
        PlanPrice.objects.filter(interval="month", currency="usd", plan__is_public=True)
        .exclude(stripe_price_id="")
        .order_by("plan__rank")
        .values_list("stripe_price_id", flat=True)
    )
    stripe = stripe_client()
    every = round(1 / failing_share) if failing_share else 0
    merchants = []
    for i in range(count):
        account = Account.objects.create(name=f"Webhook bench {i}", slug=f"whbench-{i}", billing_email=f"wh{i}@b.test")
        customer = customer_ensure(account=account)
        stripe.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": "pm_card_visa"}})
        subscription = stripe.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": prices[i % len(prices)]}]}
        )
        subscription_refresh(subscription_id=subscription.id)
        failing = None
        if every and i % every == every - 1:
            failing = stripe.v1.payment_methods.attach(
                "pm_card_chargeCustomerFail", params={"customer": customer.id}
            ).id
        merchants.append(Merchant(account.pk, customer.id, subscription.id, failing))
    return merchants


def activity_record(sandbox: str, merchants: list[Merchant], *, wanted: int) -> list[dict]:
    """Drive the merchants' Stripe lives until the sandbox has recorded `wanted` events of EVENT_TYPES; return the
    first `wanted`, oldest first, as the sandbox would deliver them.

    A round is a month: each subscription's metadata changes (an update), the failing merchants switch to their
    failing card every other round, the sandbox's time moves past the renewal (renewal invoices paid, or failed
    and the subscription past due), the failing merchants switch back and time moves 3 days on, to Stripe's first
    retry (paid: the subscription is active again)."""
    from billing.stripe.client import stripe_client

    stripe = stripe_client()
    failing = [m for m in merchants if m.failing_card]
    rounds, before = 0, -1
    while (recorded := len(_events(sandbox))) < wanted:
        if recorded == before:
            raise SystemExit(f"A round of activity recorded no event ({recorded} after {rounds} rounds).")
        rounds, before = rounds + 1, recorded
        for merchant in merchants:
            stripe.v1.subscriptions.update(merchant.subscription_id, params={"metadata": {"bench_round": str(rounds)}})
        if rounds % 2:
            _cards(stripe, failing, failing=True)
        renewal = stripe.v1.subscriptions.retrieve(merchants[0].subscription_id)["items"]["data"][0]
        sandbox_call(sandbox, "POST", "/_sandbox/advance", {"to": renewal["current_period_end"] + 2 * 3600})
        if rounds % 2:
            _cards(stripe, failing, failing=False)
            sandbox_call(sandbox, "POST", "/_sandbox/advance", {"seconds": 3 * DAY})
    return _events(sandbox)[:wanted]


def _cards(stripe, merchants: list[Merchant], *, failing: bool) -> None:
    for merchant in merchants:
        card = merchant.failing_card if failing else "pm_card_visa"
        stripe.v1.customers.update(merchant.customer_id, params={"invoice_settings": {"default_payment_method": card}})


def _events(sandbox: str) -> list[dict]:
    """Every event of EVENT_TYPES the sandbox recorded, oldest first (its lists are newest first)."""
    found, after = [], None
    while True:
        params = (
            [("types[]", t) for t in EVENT_TYPES] + [("limit", 100)] + ([("starting_after", after)] if after else [])
        )
        page = sandbox_call(sandbox, "GET", "/v1/events", params)
        found += page["data"]
        if not page["has_more"]:
            return found[::-1]
        after = page["data"][-1]["id"]
