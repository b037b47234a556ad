"""The registry of what we do with each Stripe event type: `@handles("invoice.paid")` on a function of the event.

Handlers of one type run in the order they were registered (billing's mirror first, then ledger, dunning, fraud),
each in its own transaction with its own outcome record (billing.stripe.events). A handler must be safe to run
again after it failed: it reads the object the event names (shared by every handler of the event) and brings our
state in line with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Handler:
    name: str
    function: Callable


HANDLERS: dict[str, list[Handler]] = {}


def handles(*event_types: str):
    def register(function: Callable) -> Callable:
        for event_type in event_types:
            registered = HANDLERS.setdefault(event_type, [])
            if all(handler.name != function.__name__ for handler in registered):
                registered.append(Handler(function.__name__, function))
        return function

    return register


def handlers_for(event_type: str) -> list[Handler]:
    return HANDLERS.get(event_type, [])
