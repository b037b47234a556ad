"""Billing's REST API, one module per area (subscription, invoices, checkout, changes, usage)."""
