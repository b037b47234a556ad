"""Billing's admin pages, one module per area; importing the package registers them all."""

from billing.admin import accounts, checkout, common, dunning, ledger, reconciliation, usage  # noqa: F401
