"""Sliding-ish velocity counters in the cache (locmem in development and tests, Redis in production).

A fixed window per key: the first hit creates the key with the window as its expiry, later hits increment it.
Any cache failure raises CounterUnavailable, which callers turn into a review (fail open, never a 500).
"""

from __future__ import annotations

import hashlib
import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)


class CounterUnavailable(Exception):
    pass


def _key(namespace: str, value: str) -> str:
    # Hashed: keys stay short and cache-safe whatever the value (IPv6, long domains), and hold no personal data.
    return f"fraud:{namespace}:{hashlib.sha1(value.encode()).hexdigest()[:20]}"  # noqa: S324 (not security)


def counter_hit(*, namespace: str, value: str, window_seconds: int) -> int:
    """Count one more event for `value` in its window; return the count including this one."""
    key = _key(namespace, value)
    try:
        if cache.add(key, 1, timeout=window_seconds):
            return 1
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr: this hit starts a new window
            cache.add(key, 1, timeout=window_seconds)
            return 1
    except Exception as error:
        raise CounterUnavailable(str(error)) from error


def counter_get(*, namespace: str, value: str) -> int:
    try:
        return int(cache.get(_key(namespace, value)) or 0)
    except Exception as error:
        raise CounterUnavailable(str(error)) from error


def once(*, namespace: str, value: str, window_seconds: int) -> bool:
    """True the first time `value` is seen in the window (deduplicates redelivered webhook events)."""
    try:
        return bool(cache.add(_key(namespace, value), 1, timeout=window_seconds))
    except Exception as error:
        raise CounterUnavailable(str(error)) from error
