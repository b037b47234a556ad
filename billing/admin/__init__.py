"""Billing's admin pages, one module per area; importing the package registers them all."""

from billing.admin import (  # noqa: F401
    accounts,
    checkout,
    common,
    dunning,
    ledger,
    reconciliation,
    stripe_events,
    usage,
)
