"""Reconciliation: the nightly run comparing our ledger and statuses with Stripe, and its checks."""
