"""Webhook delivery: every event POSTed, signed as Stripe signs it, to each matching webhook endpoint.

:func:`attach` subscribes a :class:`Delivery` to ``store.event_subscribers``. The subscriber runs
under the store lock, so it only serialises the event and queues it; each endpoint has its own
worker thread which delivers that endpoint's events one at a time, in creation order, without
touching the store lock (a receiver may call back into the sandbox while handling an event, as
dj-stripe does).

Signing: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}.{payload}")>``, what
``stripe.Webhook.construct_event`` verifies. A non-2xx answer, a timeout or a refused connection is
retried per :mod:`sandbox.events.schedule`: Stripe's live schedule (up to 72 h, later events pass) by
default, or ``fast`` (``retry_base_seconds * 2**(attempt-1)``, ``max_attempts``, later events wait
behind it). A job waiting for its retry is back in its queue, with when it is due (real time, and the
time of the event's test clock or of the sandbox). Settings: :data:`DEFAULTS`, overridden by the
environment (``SANDBOX_WEBHOOK_RETRY_SCHEDULE``, ``SANDBOX_WEBHOOK_RETRY_SCALE``, ``SANDBOX_WEBHOOK_RETRY_BASE``,
``SANDBOX_WEBHOOK_MAX_ATTEMPTS``, ``SANDBOX_WEBHOOK_TIMEOUT``) and at run time by ``POST /_sandbox/webhooks/config``.

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
delivers them, same event, payload and secret, to the same endpoints, attempt counts and the times of
their next attempts going on. Delivery is at least once: an attempt under way while the state is saved is
made again after a restart.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from sandbox.core.store import Store
from sandbox.events.posting import post, sign
from sandbox.events.schedule import DEFAULTS, SCHEDULES, Job, clock_time

__all__ = ["DEFAULTS", "SCHEDULES", "Delivery", "Job", "attach", "attached", "resume", "sign"]

MAX_LOG = 10_000
STATE_SECTION = "webhook_deliveries"
# Longest sleep of an idle worker with waiting jobs: ``POST /_sandbox/advance`` moves the sandbox's time silently.
POLL_SECONDS = 0.5
CLOCK_EVENTS = "test_helpers.test_clock."


def matches(endpoint: dict, event_type: str) -> bool:
    enabled = endpoint["enabled_events"]
    return endpoint["status"] == "enabled" and ("*" in enabled or event_type in enabled)


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
        self.seq = 0  # the last job queued

    # called under the store lock

    def on_event(self, store: Store, event: dict) -> None:
        self.check_reset()
        if event["type"].startswith(CLOCK_EVENTS):
            with self.cond:  # a clock moved: retries due by its time may be due now
                self.cond.notify_all()
        targets = [ep for ep in store.all("webhook_endpoint") if matches(ep, event["type"])]
        if not targets:
            return
        payload = json.dumps(event, indent=2)
        clock = store.meta.get(event["id"], {}).get("test_clock")
        with self.cond:
            for endpoint in reversed(targets):
                secret = store.meta_for(endpoint["id"])["secret"]
                self.seq += 1
                job = Job(event["id"], event["type"], payload, endpoint["url"], secret, seq=self.seq, clock=clock)
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
                while True:
                    self.check_reset()
                    start = self._next_start(queue, time.monotonic())
                    if start is not None and not self.stopping.is_set():
                        wait = start - time.monotonic()
                        if wait <= 0:
                            break
                        self.cond.wait(timeout=min(wait, POLL_SECONDS))
                    else:
                        self.cond.wait()
                queue.in_flight += 1
            try:
                faults = self._faults(endpoint_id)
                if faults.get("shuffle") and self.stopping.wait(float(faults.get("shuffle_window") or 0.3)):
                    continue
                with self.cond:
                    batch = self._take(queue, everything=bool(faults.get("shuffle")))
                    if not batch:
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

    def _next_start(self, queue: EndpointQueue, now: float) -> float | None:
        """When the worker can next take a job: ``now`` if one is due, None if the queue is empty.

        Jobs are looked at in order; one waiting for a ``fast`` retry holds back the jobs behind it.
        """
        start = None
        for job in queue.items:
            if job.due(self.store, now):
                return now
            start = job.wait_end() if start is None else min(start, job.wait_end())
            if job.blocks(now):
                break
        return start

    def _take(self, queue: EndpointQueue, everything: bool) -> list[Job]:
        """The next job due (``everything``: all the jobs due), taken out of the queue."""
        now = time.monotonic()
        due = []
        for job in queue.items:
            if job.due(self.store, now):
                due.append(job)
                if not everything:
                    break
            elif job.blocks(now):
                break
        for job in due:
            queue.items.remove(job)
        return due

    def _deliver(self, endpoint_id: str, job: Job, queue: EndpointQueue) -> bool:
        """Attempt ``job`` (each copy); False if it is not finished (back in the queue to wait, or stopping)."""
        faults = self._faults(endpoint_id)
        if faults.get("drop_then_redeliver") and not job.dropped:
            job.dropped = True
            job.attempt += 1
            job.not_before = time.monotonic() + self.config["retry_base_seconds"]
            self._record(endpoint_id, job, None, "dropped (drop_then_redeliver fault)")
            self._requeue(queue, job, in_place=False)
            return False
        copies = 2 if faults.get("duplicate") else 1
        while job.copy < copies:
            if faults.get("delay") and self.stopping.wait(float(faults["delay"])):
                return False
            if self.stopping.is_set():
                return False
            job.started(self.store)
            job.attempt += 1
            at_clock = clock_time(self.store, job.clock)
            with self.cond:
                self.posting += 1
            try:
                status, error = self._post(job)
            finally:
                with self.cond:
                    self.posting -= 1
                    self.cond.notify_all()
            delivered = status is not None and 200 <= status < 300
            retry = not delivered and job.schedule_retry(self.store, self.config)
            failed = not delivered and not retry  # the schedule is over
            self._record(endpoint_id, job, status, error, duplicate=job.copy > 0, at_clock=at_clock, failed=failed)
            if retry:
                self._requeue(queue, job, in_place=True)
                return False
            job.finished_copy(copies)
        return True

    def _requeue(self, queue: EndpointQueue, job: Job, in_place: bool) -> None:
        """Put ``job`` back to wait: at its place in line (a retry), or behind the jobs queued meanwhile."""
        with self.cond:
            if not any(other is job for other in queue.current):
                return  # forgotten by a reset while it was being attempted
            self._forget(queue, job)
            place = len(queue.items)
            if in_place:
                place = next((n for n, other in enumerate(queue.items) if other.seq > job.seq), place)
            queue.items.insert(place, job)
            self.cond.notify_all()
        self.store.dirty = True

    def _finished(self, queue: EndpointQueue, job: Job) -> None:
        with self.cond:
            self._forget(queue, job)
        # After the change, so a save that missed it is followed by another.
        self.store.dirty = True

    def _post(self, job: Job) -> tuple[int | None, str | None]:
        return post(job.url, job.payload, job.secret, self.config["timeout_seconds"])

    def _record(
        self,
        endpoint_id: str,
        job: Job,
        status: int | None,
        error: str | None,
        duplicate=False,
        at_clock: float | None = None,
        failed=False,
    ) -> None:
        delivered = status is not None and 200 <= status < 300
        next_at, next_clock = (None, None) if delivered or failed else job.next_attempt()
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
                    "delivered": delivered,
                    "error": error,
                    "duplicate": duplicate,
                    "at": time.time(),
                    "test_clock": job.clock,
                    "clock_time": at_clock,
                    "next_attempt": next_at,
                    "next_attempt_clock_time": next_clock,
                    "failed": failed,
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
            # A state saved before there were schedules had the ``fast`` one.
            self.config.update({"retry_schedule": "fast", **(saved.get("config") or {})})
            for endpoint_id, jobs in (saved.get("queues") or {}).items():
                queue = self._queue(endpoint_id)
                queue.items.extendleft(Job.restored(job) for job in reversed(jobs))
                self.seq = max([self.seq, *(job.seq for job in queue.items)])
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

    def scheduled(self) -> list[dict]:
        """The deliveries waiting for their next attempt (a retry or a redelivery), soonest first."""
        with self.cond:
            rows = [job.row(key) for key, queue in self.queues.items() for job in queue.items if job.attempt > 0]
        return sorted(rows, key=lambda row: row["next_attempt"] or 0)

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is in flight and nothing queued is due within ``timeout``; False on timeout.

        Deliveries whose next attempt comes later (a ``stripe`` retry an hour away) stay queued: see
        :meth:`scheduled`.
        """
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                now = time.monotonic()
                starts = [self._next_start(q, now) for q in self.queues.values()]
                if not any(q.in_flight for q in self.queues.values()) and all(
                    start is None or start > deadline for start in starts
                ):
                    return True
                if now >= deadline:
                    return False
                self.cond.wait(timeout=min(deadline - now, 0.1))


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
