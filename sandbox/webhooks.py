"""Webhook delivery: every event POSTed, signed as Stripe signs it, to each matching webhook endpoint.

:func:`attach` subscribes a :class:`Delivery` to ``store.event_subscribers``. The subscriber runs
under the store lock, so it only serialises the event and queues it; each endpoint has its own
worker thread which delivers that endpoint's events one at a time, in creation order, without
touching the store lock (a receiver may call back into the sandbox while handling an event, as
dj-stripe does).

Signing: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}.{payload}")>``, what
``stripe.Webhook.construct_event`` verifies. A non-2xx answer, a timeout or a refused connection is
retried with exponential back-off (``retry_base_seconds * 2**(attempt-1)``) up to ``max_attempts``;
the endpoint's later events wait behind it (order is kept). Settings: :data:`DEFAULTS`, overridden by
the environment (``SANDBOX_WEBHOOK_RETRY_BASE``, ``SANDBOX_WEBHOOK_MAX_ATTEMPTS``,
``SANDBOX_WEBHOOK_TIMEOUT``) and at run time by ``POST /_sandbox/webhooks/config``.

Fault modes, per endpoint (``store.meta_for(endpoint_id)["faults"]``, set by
``POST /_sandbox/webhook_endpoints/{id}/faults``):

- ``duplicate``: each event is delivered twice.
- ``shuffle``: the worker waits ``shuffle_window`` seconds (default 0.3) to gather a batch, then delivers
  it in a different order.
- ``delay``: wait that many seconds before each delivery.
- ``drop_then_redeliver``: the first attempt of each event is dropped (recorded as ``dropped``, nothing
  sent); the event is redelivered after ``retry_base_seconds``, behind the events queued meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field

from sandbox.store import Store

DEFAULTS = {
    "retry_base_seconds": float(os.environ.get("SANDBOX_WEBHOOK_RETRY_BASE", "1.0")),
    "max_attempts": int(os.environ.get("SANDBOX_WEBHOOK_MAX_ATTEMPTS", "5")),
    "timeout_seconds": float(os.environ.get("SANDBOX_WEBHOOK_TIMEOUT", "10")),
}
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
MAX_LOG = 10_000


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def matches(endpoint: dict, event_type: str) -> bool:
    enabled = endpoint["enabled_events"]
    return endpoint["status"] == "enabled" and ("*" in enabled or event_type in enabled)


@dataclass
class Job:
    event_id: str
    event_type: str
    payload: str
    url: str
    secret: str
    attempt: int = 0
    not_before: float = 0.0
    dropped: bool = False


@dataclass
class EndpointQueue:
    items: deque = field(default_factory=deque)
    in_flight: int = 0
    thread: threading.Thread | None = None


class Delivery:
    """The delivery queues, workers and attempt log of one store."""

    def __init__(self, store: Store):
        self.store = store
        self.cond = threading.Condition()
        self.queues: dict[str, EndpointQueue] = {}
        self.log: list[dict] = []
        self.config = dict(DEFAULTS)
        self._tables_id = id(store.tables)

    # called under the store lock

    def on_event(self, store: Store, event: dict) -> None:
        self.check_reset()
        targets = [ep for ep in store.all("webhook_endpoint") if matches(ep, event["type"])]
        if not targets:
            return
        payload = json.dumps(event, indent=2)
        with self.cond:
            for endpoint in reversed(targets):
                secret = store.meta_for(endpoint["id"])["secret"]
                job = Job(event["id"], event["type"], payload, endpoint["url"], secret)
                self._queue(endpoint["id"]).items.append(job)
            self.cond.notify_all()

    def check_reset(self) -> None:
        """After ``/_sandbox/reset`` (the store's tables were replaced) forget queued work and the log."""
        if self._tables_id != id(self.store.tables):
            with self.cond:
                self._tables_id = id(self.store.tables)
                for queue in self.queues.values():
                    queue.items.clear()
                self.log.clear()

    def _queue(self, endpoint_id: str) -> EndpointQueue:
        queue = self.queues.get(endpoint_id)
        if queue is None:
            queue = self.queues[endpoint_id] = EndpointQueue()
        if queue.thread is None:
            queue.thread = threading.Thread(
                target=self._worker, args=(endpoint_id, queue), name=f"webhooks-{endpoint_id}", daemon=True
            )
            queue.thread.start()
        return queue

    # workers

    def _faults(self, endpoint_id: str) -> dict:
        return dict(self.store.meta.get(endpoint_id, {}).get("faults") or {})

    def _worker(self, endpoint_id: str, queue: EndpointQueue) -> None:
        while True:
            with self.cond:
                while not queue.items:
                    self.cond.wait()
                queue.in_flight += 1
            try:
                faults = self._faults(endpoint_id)
                if faults.get("shuffle"):
                    time.sleep(float(faults.get("shuffle_window") or 0.3))
                with self.cond:
                    batch = self._take(queue, everything=bool(faults.get("shuffle")))
                if batch is None:
                    continue
                if len(batch) > 1:
                    shuffled = batch[:]
                    while shuffled == batch:
                        random.shuffle(shuffled)
                    batch = shuffled
                for job in batch:
                    self._deliver(endpoint_id, job, queue)
            finally:
                with self.cond:
                    queue.in_flight -= 1
                    self.cond.notify_all()

    def _take(self, queue: EndpointQueue, everything: bool) -> list[Job] | None:
        """The next job(s) due; a job waiting for redelivery lets the others pass, or is waited for."""
        now = time.monotonic()
        due = [job for job in queue.items if job.not_before <= now]
        if not due:
            wait = min(job.not_before for job in queue.items) - now
            self.cond.wait(timeout=max(wait, 0.01))
            return None
        if everything:
            for job in due:
                queue.items.remove(job)
            return due
        queue.items.remove(due[0])
        return [due[0]]

    def _deliver(self, endpoint_id: str, job: Job, queue: EndpointQueue) -> None:
        faults = self._faults(endpoint_id)
        if faults.get("drop_then_redeliver") and not job.dropped:
            job.dropped = True
            job.attempt += 1
            self._record(endpoint_id, job, None, "dropped (drop_then_redeliver fault)")
            job.not_before = time.monotonic() + self.config["retry_base_seconds"]
            with self.cond:
                queue.items.append(job)
                self.cond.notify_all()
            return
        copies = 2 if faults.get("duplicate") else 1
        for copy_index in range(copies):
            while True:
                if faults.get("delay"):
                    time.sleep(float(faults["delay"]))
                job.attempt += 1
                status, error = self._post(job)
                self._record(endpoint_id, job, status, error, duplicate=copy_index > 0)
                if status is not None and 200 <= status < 300:
                    break
                if job.attempt >= self.config["max_attempts"]:
                    break
                time.sleep(self.config["retry_base_seconds"] * 2 ** (job.attempt - 1))
            job.attempt = 0 if copy_index == 0 and copies > 1 else job.attempt

    def _post(self, job: Job) -> tuple[int | None, str | None]:
        request = urllib.request.Request(  # noqa: S310 (endpoint URLs are checked to be http(s))
            job.url,
            data=job.payload.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                "Stripe-Signature": sign(job.payload, job.secret),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config["timeout_seconds"]) as response:  # noqa: S310
                response.read()
                return response.status, None
        except urllib.error.HTTPError as error:
            return error.code, error.read()[:500].decode(errors="replace")
        except (OSError, ValueError) as error:
            return None, f"{type(error).__name__}: {error}"

    def _record(self, endpoint_id: str, job: Job, status: int | None, error: str | None, duplicate=False) -> None:
        with self.cond:
            self.log.append(
                {
                    "object": "sandbox.webhook_delivery",
                    "event": job.event_id,
                    "type": job.event_type,
                    "endpoint": endpoint_id,
                    "url": job.url,
                    "attempt": job.attempt,
                    "status_code": status,
                    "delivered": status is not None and 200 <= status < 300,
                    "error": error,
                    "duplicate": duplicate,
                    "at": time.time(),
                }
            )
            del self.log[:-MAX_LOG]

    # waiting

    def pending(self) -> int:
        with self.cond:
            return sum(len(q.items) + q.in_flight for q in self.queues.values())

    def flush(self, timeout: float) -> bool:
        """Wait until every queue is empty and nothing is in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while any(q.items or q.in_flight for q in self.queues.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(timeout=min(remaining, 0.1))
        return True


_deliveries: dict[int, Delivery] = {}
_attach_lock = threading.Lock()


def attach(store: Store) -> Delivery:
    """The store's :class:`Delivery`, subscribing it to the store's events the first time."""
    with _attach_lock:
        delivery = _deliveries.get(id(store))
        if delivery is None or delivery.store is not store:
            delivery = _deliveries[id(store)] = Delivery(store)
            store.event_subscribers.append(delivery.on_event)
        return delivery
