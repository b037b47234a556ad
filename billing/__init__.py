"""Billing: Stripe through dj-stripe (the mirror), and our decisions: checkout, usage, ledger, dunning, notices."""
