"""Subscriptions and subscription items: state, charge specs, lifecycle (status, invoicing, cancel), create,
update (prorations), create_preview, and the endpoints (api). Callers import the modules directly."""
