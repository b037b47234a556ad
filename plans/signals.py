"""Signals the catalog sends; the catalog imports no app, so whoever keeps the audit log listens."""

from django.dispatch import Signal

# Sent inside the edit's transaction with: actor, action ("catalog.<model>_<created|changed|deleted>"),
# target ("<model>:<pk>"), before, after (plain field values). accounts writes it to the audit log.
catalog_edited = Signal()
