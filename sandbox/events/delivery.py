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

Pending deliveries (queued, in flight, waiting to retry or for redelivery) and the settings are part
of the saved state (``store.extra_state["webhook_deliveries"]``): after a restart :func:`resume`
delivers them, same event, payload and secret, to the same endpoints, attempt counts going on.
Delivery is at least once: an attempt under way while the state is saved is made again after a restart.
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

from sandbox.core.store import Store

DEFAULTS = {
    "retry_base_seconds": float(os.environ.get("SANDBOX_WEBHOOK_RETRY_BASE", "1.0")),
    "max_attempts": int(os.environ.get("SANDBOX_WEBHOOK_MAX_ATTEMPTS", "5")),
    "timeout_seconds": float(os.environ.get("SANDBOX_WEBHOOK_TIMEOUT", "10")),
}
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
MAX_LOG = 10_000
STATE_SECTION = "webhook_deliveries"


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def matches(endpoint: dict, event_type: str) -> bool:
    enabled = endpoint["enabled_events"]
    return endpoint["status"] == "enabled" and ("*" in enabled or event_type in enabled)


@dataclass(eq=False)  # jobs are compared by identity: two deliveries of one event are two jobs
class Job:
    event_id: str
    event_type: str
    payload: str
    url: str
    secret: str
    attempt: int = 0
    # Monotonic times: ``not_before`` lets later jobs pass (redelivery), ``retry_at`` keeps them waiting behind.
    not_before: float = 0.0
    retry_at: float = 0.0
    dropped: bool = False
    copy: int = 0  # which copy of a ``duplicate`` fault is being delivered

    def saved(self) -> dict:
        """The job as JSON, its waits as wall-clock times (monotonic clocks do not survive a restart)."""
        now, wall = time.monotonic(), time.time()
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "payload": self.payload,
            "url": self.url,
            "secret": self.secret,
            "attempt": self.attempt,
            "not_before": wall + max(self.not_before - now, 0),
            "retry_at": wall + max(self.retry_at - now, 0),
            "dropped": self.dropped,
            "copy": self.copy,
        }

    @classmethod
    def restored(cls, saved: dict) -> Job:
        now, wall = time.monotonic(), time.time()
        waits = {key: now + max(saved[key] - wall, 0) for key in ("not_before", "retry_at")}
        return cls(**{**saved, **waits})


@dataclass
class EndpointQueue:
    items: deque = field(default_factory=deque)
    in_flight: int = 0
    thread: threading.Thread | None = None
    # Jobs taken by the worker and not finished yet: saved with ``items`` so a restart loses none.
    current: list = field(default_factory=list)


class Delivery:
    """The delivery queues, workers and attempt log of one store."""

    def __init__(self, store: Store):
        self.store = store
        self.cond = threading.Condition()
        self.queues: dict[str, EndpointQueue] = {}
        self.log: list[dict] = []
        self.config = dict(DEFAULTS)
        self._tables_id = id(store.tables)
        # Set on shutdown: workers start no new attempt, so the final save holds everything not delivered.
        self.stopping = threading.Event()
        self.posting = 0  # HTTP requests to receivers under way

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
                    queue.current.clear()
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
                while not queue.items or self.stopping.is_set():
                    self.cond.wait()
                queue.in_flight += 1
            try:
                faults = self._faults(endpoint_id)
                if faults.get("shuffle") and self.stopping.wait(float(faults.get("shuffle_window") or 0.3)):
                    continue
                with self.cond:
                    batch = self._take(queue, everything=bool(faults.get("shuffle")))
                    if batch is None:
                        continue
                    queue.current.extend(batch)
                if len(batch) > 1:
                    shuffled = batch[:]
                    while shuffled == batch:
                        random.shuffle(shuffled)
                    batch = shuffled
                for job in batch:
                    if self._deliver(endpoint_id, job, queue):
                        self._finished(queue, job)
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

    def _deliver(self, endpoint_id: str, job: Job, queue: EndpointQueue) -> bool:
        """Deliver ``job`` (every copy, with retries); False if it is not finished (requeued, or stopping)."""
        faults = self._faults(endpoint_id)
        if faults.get("drop_then_redeliver") and not job.dropped:
            job.dropped = True
            job.attempt += 1
            self._record(endpoint_id, job, None, "dropped (drop_then_redeliver fault)")
            job.not_before = time.monotonic() + self.config["retry_base_seconds"]
            with self.cond:
                self._forget(queue, job)
                queue.items.append(job)
                self.cond.notify_all()
            return False
        copies = 2 if faults.get("duplicate") else 1
        while job.copy < copies:
            while True:
                if self.stopping.wait(max(job.retry_at - time.monotonic(), 0)):
                    return False
                if faults.get("delay") and self.stopping.wait(float(faults["delay"])):
                    return False
                job.attempt += 1
                with self.cond:
                    self.posting += 1
                try:
                    status, error = self._post(job)
                finally:
                    with self.cond:
                        self.posting -= 1
                        self.cond.notify_all()
                self._record(endpoint_id, job, status, error, duplicate=job.copy > 0)
                if status is not None and 200 <= status < 300:
                    break
                if job.attempt >= self.config["max_attempts"]:
                    break
                job.retry_at = time.monotonic() + self.config["retry_base_seconds"] * 2 ** (job.attempt - 1)
            job.copy += 1
            job.retry_at = 0.0
            job.attempt = 0 if job.copy < copies else job.attempt
        return True

    def _finished(self, queue: EndpointQueue, job: Job) -> None:
        with self.cond:
            self._forget(queue, job)
        # After the change, so a save that missed it is followed by another.
        self.store.dirty = True

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

    @staticmethod
    def _forget(queue: EndpointQueue, job: Job) -> None:
        queue.current[:] = [other for other in queue.current if other is not job]

    # saving and resuming

    def saved(self) -> dict:
        """Settings and every delivery not finished, per endpoint, in delivery order (for the state file)."""
        self.check_reset()
        with self.cond:
            queues = {
                endpoint_id: [job.saved() for job in [*queue.current, *queue.items]]
                for endpoint_id, queue in self.queues.items()
            }
            return {"config": dict(self.config), "queues": {key: jobs for key, jobs in queues.items() if jobs}}

    def resume(self, saved: dict) -> None:
        """Queue again the deliveries of a saved state, ahead of anything new."""
        with self.cond:
            self.config.update(saved.get("config") or {})
            for endpoint_id, jobs in (saved.get("queues") or {}).items():
                queue = self._queue(endpoint_id)
                queue.items.extendleft(Job.restored(job) for job in reversed(jobs))
            self.cond.notify_all()

    def stop(self) -> None:
        """Start no new attempt; wait (at most one request timeout) for attempts under way to end."""
        self.stopping.set()
        deadline = time.monotonic() + self.config["timeout_seconds"]
        with self.cond:
            self.cond.notify_all()
            while self.posting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(timeout=min(remaining, 0.1))

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
    """The store's :class:`Delivery`, subscribing it to the store's events the first time.

    The first time, it also takes over the deliveries of a loaded state file and saves its own with the state.
    """
    with _attach_lock:
        delivery = _deliveries.get(id(store))
        if delivery is None or delivery.store is not store:
            delivery = _deliveries[id(store)] = Delivery(store)
            store.event_subscribers.append(delivery.on_event)
            store.extra_state[STATE_SECTION] = delivery.saved
            saved = store.restored.pop(STATE_SECTION, None)
            if saved:
                delivery.resume(saved)
        return delivery


def resume(store: Store) -> Delivery | None:
    """After loading a state file: deliver what was pending, and the events to come if there are endpoints."""
    with store.lock:
        if STATE_SECTION in store.restored or store.tables.get("webhook_endpoint"):
            return attach(store)
    return None


def attached(store: Store) -> Delivery | None:
    """The store's :class:`Delivery` if one is attached (without attaching one)."""
    with _attach_lock:
        delivery = _deliveries.get(id(store))
        return delivery if delivery is not None and delivery.store is store else None
