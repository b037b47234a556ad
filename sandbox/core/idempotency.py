"""Stripe's idempotent requests: a key replays its first result, and refuses other parameters.

Results are kept per (API key, ``Idempotency-Key``) for 24 hours, like Stripe. The ``stripe``
package sends a fresh key with every POST, so the cache is also bounded in size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sandbox.core.store import Store

TTL_SECONDS = 24 * 3600
MAX_ENTRIES = 100_000


@dataclass
class Saved:
    fingerprint: tuple
    status: int
    body: bytes
    saved_at: float


def fingerprint(method: str, path: str, params: dict) -> tuple:
    """What must match for a replay: the endpoint and the decoded parameters."""
    return (method, path, repr(sorted(params.items(), key=lambda kv: kv[0])))


def lookup(store: Store, api_key: str, key: str) -> Saved | None:
    saved = store.idempotency.get((api_key, key))
    if saved is not None and time.time() - saved.saved_at > TTL_SECONDS:
        del store.idempotency[(api_key, key)]
        return None
    return saved


def save(store: Store, api_key: str, key: str, fp: tuple, status: int, body: bytes) -> None:
    cache = store.idempotency
    if len(cache) >= MAX_ENTRIES:
        for old in list(cache)[: MAX_ENTRIES // 10]:
            del cache[old]
    cache[(api_key, key)] = Saved(fp, status, body, time.time())
