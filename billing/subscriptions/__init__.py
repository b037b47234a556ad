"""Subscriptions: checkout, the mirror's sync into account status, plan changes, seats, and their reads."""
