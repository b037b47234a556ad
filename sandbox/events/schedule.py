"""When a webhook delivery is attempted again: the retry schedules, and one pending delivery (:class:`Job`).

Two schedules (``config["retry_schedule"]``):

- ``stripe`` (the default): Stripe's live mode, "attempts to deliver a given event to your webhook endpoint for up
  to 3 days with an exponential back off". Attempts 2 to 12 are due at :data:`STRIPE_OFFSETS` after the first
  attempt (1 min, 6 min, 36 min, 2 h 36 min, 7 h 36 min, 17 h 36 min, 27 h 36 min, 39 h 36 min, 51 h 36 min,
  63 h 36 min, 72 h), times ``retry_scale``. An attempt made late (the sandbox was stopped, a test clock jumped)
  is not made up for: the next one is the first of the schedule still ahead. When none is left the delivery is
  failed. A delivery waiting for a retry lets the endpoint's later events pass (Stripe does not keep order).
- ``fast`` (what the test suite uses): ``retry_base_seconds * 2**(attempt-1)`` after each failed attempt, up to
  ``max_attempts`` (default 5) attempts; the endpoint's later events wait behind it (order is kept).

``max_attempts``, when set, caps the attempts of either schedule. A wait is over when real time reaches it, or
when the event's clock does: the event's test clock (its ``frozen_time``, moved by an advance) or, for an event on
no clock, the sandbox's own time (moved by ``POST /_sandbox/advance``).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from sandbox.core.store import Store

MINUTE, HOUR = 60, 3600
# The waits after attempts 1, 2, ... of the ``stripe`` schedule; they add up to 72 hours.
STRIPE_DELAYS = (
    1 * MINUTE,
    5 * MINUTE,
    30 * MINUTE,
    2 * HOUR,
    5 * HOUR,
    10 * HOUR,
    10 * HOUR,
    12 * HOUR,
    12 * HOUR,
    12 * HOUR,
    8 * HOUR + 24 * MINUTE,
)
# When attempts 2, 3, ... are due, in seconds after the first attempt (the last one is 72 h).
STRIPE_OFFSETS = tuple(sum(STRIPE_DELAYS[: n + 1]) for n in range(len(STRIPE_DELAYS)))
assert STRIPE_OFFSETS[-1] == 72 * HOUR
FAST_MAX_ATTEMPTS = 5
SCHEDULES = ("stripe", "fast")
WAITS = ("not_before", "retry_at")  # monotonic in a job, wall-clock in the state file; 0 means no wait


def _max_attempts(value: str | None) -> int | None:
    return max(1, int(value)) if value else None


DEFAULTS = {
    "retry_schedule": os.environ.get("SANDBOX_WEBHOOK_RETRY_SCHEDULE") or "stripe",
    "retry_scale": float(os.environ.get("SANDBOX_WEBHOOK_RETRY_SCALE") or "1"),
    "retry_base_seconds": float(os.environ.get("SANDBOX_WEBHOOK_RETRY_BASE") or "1.0"),
    "max_attempts": _max_attempts(os.environ.get("SANDBOX_WEBHOOK_MAX_ATTEMPTS")),
    "timeout_seconds": float(os.environ.get("SANDBOX_WEBHOOK_TIMEOUT") or "10"),
}
if DEFAULTS["retry_schedule"] not in SCHEDULES:
    raise SystemExit(f"SANDBOX_WEBHOOK_RETRY_SCHEDULE must be one of {', '.join(SCHEDULES)}")


def clock_time(store: Store, clock_id: str | None) -> float:
    """The time an event lives on: its test clock's frozen time, else the sandbox's own time (not rounded).

    Read without the store lock (one dict lookup), so delivery workers never wait for a request.
    """
    clock = store.tables.get("test_helpers.test_clock", {}).get(clock_id) if clock_id else None
    return clock["frozen_time"] if clock is not None else time.time() + store.time_offset


@dataclass(eq=False)  # jobs are compared by identity: two deliveries of one event are two jobs
class Job:
    event_id: str
    event_type: str
    payload: str
    url: str
    secret: str
    attempt: int = 0
    # Monotonic times: ``not_before`` lets later jobs pass (redelivery, ``stripe`` retries), ``retry_at`` keeps
    # them waiting behind (``fast`` retries).
    not_before: float = 0.0
    retry_at: float = 0.0
    dropped: bool = False
    copy: int = 0  # which copy of a ``duplicate`` fault is being delivered
    seq: int = 0  # queueing order: a retry goes back in line at its place
    clock: str | None = None  # the event's test clock (None: the sandbox's own time)
    first_at: float | None = None  # wall time of this copy's first attempt
    first_clock: float | None = None  # the clock's time then
    clock_due: float | None = None  # the clock's time at which the wait is over (with the real-time wait)

    def wait_end(self) -> float:
        return max(self.not_before, self.retry_at)

    def due(self, store: Store, now: float) -> bool:
        """Whether the job may be attempted at monotonic time ``now``."""
        if self.wait_end() <= now:
            return True
        return self.clock_due is not None and clock_time(store, self.clock) >= self.clock_due

    def blocks(self, now: float) -> bool:
        """Whether the job's wait holds the endpoint's later events back."""
        return self.retry_at > now

    def started(self, store: Store) -> None:
        """Called as an attempt begins: the first one anchors the schedule."""
        if self.first_at is None:
            self.first_at, self.first_clock = time.time(), clock_time(store, self.clock)

    def finished_copy(self, copies: int) -> None:
        """One copy is done (delivered or failed): the next copy starts afresh."""
        self.copy += 1
        self.not_before = self.retry_at = 0.0
        self.clock_due = self.first_at = self.first_clock = None
        if self.copy < copies:
            self.attempt = 0

    def schedule_retry(self, store: Store, config: dict) -> bool:
        """After a failed attempt, set when the next is due; False when the schedule is over (failed)."""
        now, wall, clock_now = time.monotonic(), time.time(), clock_time(store, self.clock)
        if self.first_at is None:  # a job saved before the schedule anchor existed
            self.first_at, self.first_clock = wall, clock_now
        cap = config.get("max_attempts")
        if config.get("retry_schedule") == "fast":
            if self.attempt >= (cap or FAST_MAX_ATTEMPTS):
                return False
            delay = config["retry_base_seconds"] * 2 ** (self.attempt - 1)
            self.retry_at, self.not_before, self.clock_due = now + delay, 0.0, clock_now + delay
            return True
        if cap and self.attempt >= cap:
            return False
        elapsed = max(wall - self.first_at, clock_now - self.first_clock)
        ahead = [offset * config["retry_scale"] for offset in STRIPE_OFFSETS]
        ahead = [offset for offset in ahead if offset > elapsed]
        if not ahead:
            return False
        self.not_before, self.retry_at = now + (self.first_at + ahead[0] - wall), 0.0
        self.clock_due = self.first_clock + ahead[0]
        return True

    def next_attempt(self) -> tuple[float | None, float | None]:
        """When the wait is over: (wall time, clock time); (None, None) if the job is not waiting."""
        end = self.wait_end()
        if not end and self.clock_due is None:
            return None, None
        return time.time() + max(end - time.monotonic(), 0), self.clock_due

    def row(self, endpoint_id: str) -> dict:
        """The job as ``GET /_sandbox/deliveries`` lists a scheduled delivery."""
        next_at, next_clock = self.next_attempt()
        return {
            "event": self.event_id,
            "type": self.event_type,
            "endpoint": endpoint_id,
            "attempts": self.attempt,
            "test_clock": self.clock,
            "next_attempt": next_at,
            "next_attempt_clock_time": next_clock,
        }

    def saved(self) -> dict:
        """The job as JSON, its waits as wall-clock times (monotonic clocks do not survive a restart)."""
        now, wall = time.monotonic(), time.time()
        waits = {key: getattr(self, key) and wall + max(getattr(self, key) - now, 0) for key in WAITS}
        return {**asdict(self), **waits}

    @classmethod
    def restored(cls, saved: dict) -> Job:
        now, wall = time.monotonic(), time.time()
        waits = {key: saved.get(key) and now + max(saved[key] - wall, 0) for key in WAITS}
        return cls(**{**saved, **waits})
