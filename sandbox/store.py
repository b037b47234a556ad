"""The in-memory state of the sandbox: every object, behind one re-entrant lock.

One lock keeps reasoning simple: the app holds it for the whole of each API request, so a
handler sees and changes a consistent world, and helpers can call each other (hence
re-entrant). Handlers are short, so the lock does not limit a local server.

Objects live in ``tables[object_type][id]`` where ``object_type`` is the object's ``object``
field (``customer``, ``price``, ``test_helpers.test_clock``...). Insertion order is creation
order, which is what Stripe's newest-first lists page through. State a real Stripe object does
not expose (a card's number behind a payment method) lives in ``meta[id]``.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

_ALPHABET = string.ascii_letters + string.digits

STATE_VERSION = 1


class Store:
    """All sandbox state; see the module docstring."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # Called as ``subscriber(store, event)`` after each event is recorded (webhook delivery plugs in here).
        # They run under the lock: they must queue work, not block on the network.
        self.event_subscribers: list[Callable[[Store, dict], None]] = []
        self.reset()

    def reset(self) -> None:
        """Forget every object, event and idempotency result; subscribers stay."""
        with self.lock:
            self.tables: dict[str, dict[str, dict]] = {}
            self.meta: dict[str, dict] = {}
            # id -> the ``{"id", "object", "deleted": true}`` stub Stripe still returns for some deleted objects.
            self.deleted: dict[str, dict] = {}
            self.idempotency: dict = {}
            self.time_offset = 0
            self.dirty = True

    # ids and time

    @staticmethod
    def new_id(prefix: str, length: int = 24) -> str:
        """A Stripe-style id: ``prefix_`` then ``length`` random alphanumerics (``cus_…``, ``pm_…``)."""
        return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))

    def now(self, clock_id: str | None = None) -> int:
        """Unix time "now" for an object; for one tied to a test clock, that clock's frozen time.

        Every ``created``/period timestamp must come from here so that test clocks (stored as
        ``test_helpers.test_clock`` objects with ``frozen_time``) govern the objects attached to them.
        """
        if clock_id:
            clock = self.tables.get("test_helpers.test_clock", {}).get(clock_id)
            if clock is not None:
                return clock["frozen_time"]
        return int(time.time()) + self.time_offset

    # objects

    def insert(self, obj: dict) -> dict:
        with self.lock:
            self.tables.setdefault(obj["object"], {})[obj["id"]] = obj
            self.dirty = True
            return obj

    def get(self, object_type: str, obj_id: str) -> dict | None:
        return self.tables.get(object_type, {}).get(obj_id)

    def find_by_id(self, obj_id: str) -> dict | None:
        """Any object by id, whatever its type (used by ``expand``)."""
        for table in self.tables.values():
            if obj_id in table:
                return table[obj_id]
        return None

    def all(self, object_type: str) -> Iterator[dict]:
        """Objects of a type, newest first (Stripe's list order)."""
        return reversed(list(self.tables.get(object_type, {}).values()))

    def delete(self, object_type: str, obj_id: str, stub: dict | None = None) -> None:
        """Remove an object; keep ``stub`` if Stripe keeps answering retrieves of it (deleted customers)."""
        with self.lock:
            self.tables.get(object_type, {}).pop(obj_id, None)
            self.meta.pop(obj_id, None)
            if stub is not None:
                self.deleted[obj_id] = stub
            self.dirty = True

    def meta_for(self, obj_id: str) -> dict:
        """Hidden per-object state (never serialised into API responses)."""
        return self.meta.setdefault(obj_id, {})

    # persistence

    def dump(self) -> dict:
        with self.lock:
            return {
                "version": STATE_VERSION,
                "tables": self.tables,
                "meta": self.meta,
                "deleted": self.deleted,
                "time_offset": self.time_offset,
            }

    def load_dict(self, data: dict) -> None:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported sandbox state version {data.get('version')!r}")
        with self.lock:
            self.reset()
            self.tables = data["tables"]
            self.meta = data["meta"]
            self.deleted = data.get("deleted", {})
            self.time_offset = data.get("time_offset", 0)
            self.dirty = False

    def save(self, path: str) -> None:
        """Write the state atomically (temp file then rename) so a crash never leaves half a file."""
        with self.lock:
            payload = json.dumps(self.dump())
            self.dirty = False
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sandbox-state-")
        with os.fdopen(fd, "w") as handle:
            handle.write(payload)
        os.replace(tmp, path)

    def load(self, path: str) -> None:
        with open(path) as handle:
            self.load_dict(json.load(handle))
