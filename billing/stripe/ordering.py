"""One customer's Stripe state is written by one connection at a time: the event worker and the requests alike.

A PostgreSQL advisory lock on the customer's id, at session level so it spans the transactions of everything done
under it, and re-entrant (PostgreSQL counts a session's acquisitions): a handler that holds it for its event and
calls a service that takes it again does not wait on itself. The event worker holds it while it applies one
event (billing.stripe.events); a request that re-reads a subscription after writing to it (a plan change, a
cancellation) takes it too, so the two never interleave their reads and writes of the same rows: before, they
took the account's and the mirror's rows in other orders and deadlocked (the 300-merchant journey bench), and an
older read could be applied after a newer one.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

from django.db import connection

LOCK_WAIT = timedelta(seconds=30)  # the longest anyone waits for another's work on the same customer


def _key(customer_id: str) -> str:
    return f"stripe-events:{customer_id}"


@contextmanager
def customer_serialized(customer_id: str | None):
    """Hold `customer_id`'s lock inside; waits at most `LOCK_WAIT`, then raises (PostgreSQL's lock_timeout:
    an event worker leaves its event due for the sweeper). No id (an object of no customer): no lock."""
    if not customer_id:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = '{int(LOCK_WAIT.total_seconds() * 1000)}ms'")
        try:
            cursor.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [_key(customer_id)])
        finally:
            cursor.execute("RESET lock_timeout")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [_key(customer_id)])
