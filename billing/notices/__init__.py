"""Notices to merchants: emails (notices, receipts) and reminders."""
