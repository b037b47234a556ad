"""The in-memory state of the sandbox: every object, behind one re-entrant lock.

One lock keeps reasoning simple: the app holds it for the whole of each API request, so a
handler sees and changes a consistent world, and helpers can call each other (hence
re-entrant). Handlers are short, so the lock does not limit a local server.

Objects live in ``tables[object_type][id]`` where ``object_type`` is the object's ``object``
field (``customer``, ``price``, ``test_helpers.test_clock``...). Insertion order is creation
order, which is what Stripe's newest-first lists page through. State a real Stripe object does
not expose (a card's number behind a payment method) lives in ``meta[id]``.

Events are never changed once inserted (:func:`sandbox.events.emit.emit` snapshots the object, and
responses are deep copies), which is what lets :mod:`sandbox.core.statefile` save them without copying.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from sandbox.core import errors, objects

_ALPHABET = string.ascii_letters + string.digits

STATE_VERSION = 1
# The sections of the state file the store itself owns; any other section belongs to an ``extra_state`` provider.
CORE_SECTIONS = ("version", "tables", "meta", "deleted", "time_offset")
# Tables whose objects are never changed after ``insert`` (see the module docstring).
IMMUTABLE_TABLES = frozenset({"event"})


class Store:
    """All sandbox state; see the module docstring."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # Called as ``subscriber(store, event)`` after each event is recorded (webhook delivery plugs in here).
        # They run under the lock: they must queue work, not block on the network.
        self.event_subscribers: list[Callable[[Store, dict], None]] = []
        # Other state saved in the state file: section name -> a function returning its JSON-able snapshot,
        # called under the lock (webhook delivery saves its pending deliveries here).
        self.extra_state: dict[str, Callable[[], Any]] = {}
        # Sections of a loaded state file that no provider has claimed yet (each provider pops its own).
        self.restored: dict[str, Any] = {}
        # The :class:`sandbox.core.statefile.StateFile` of ``--state-file``, if any (``/_sandbox/state/save`` uses it).
        self.state_file = None
        # API requests served, by "METHOD /v1/rule" (``GET /_sandbox/requests``): what a client costs Stripe.
        self.request_counts: Counter = Counter()
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

    def fetch(self, object_type: str, obj_id: str, param: str | None = "id") -> dict:
        """The stored object, or Stripe's 404 ``resource_missing`` naming ``param``."""
        obj = self.get(object_type, obj_id)
        if obj is None:
            raise errors.resource_missing(object_type, obj_id, param)
        return obj

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

    @contextlib.contextmanager
    def unlocked(self) -> Iterator[None]:
        """Let other requests run while this one waits (for a caller holding the lock exactly once)."""
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()

    def meta_for(self, obj_id: str) -> dict:
        """Hidden per-object state (never serialised into API responses)."""
        return self.meta.setdefault(obj_id, {})

    # persistence (the state file itself is :mod:`sandbox.core.statefile`)

    def dump(self) -> dict:
        """The whole state, live (not copied): the ``--state-file`` format."""
        with self.lock:
            return {
                "version": STATE_VERSION,
                "tables": self.tables,
                "meta": self.meta,
                "deleted": self.deleted,
                "time_offset": self.time_offset,
                **{name: snapshot() for name, snapshot in self.extra_state.items()},
            }

    def load_dict(self, data: dict) -> None:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported sandbox state version {data.get('version')!r}")
        with self.lock:
            self.reset()
            self.tables = data["tables"]
            for resource, fields in objects.RETIRED_FIELDS.items():  # a file saved before the field was dropped
                for obj in self.tables.get(resource, {}).values():
                    for field in fields:
                        obj.pop(field, None)
            self.meta = data["meta"]
            self.deleted = data.get("deleted", {})
            self.time_offset = data.get("time_offset", 0)
            self.restored = {name: value for name, value in data.items() if name not in CORE_SECTIONS}
            self.dirty = False

    def load(self, path: str) -> None:
        with open(path) as handle:
            self.load_dict(json.load(handle))
