"""Billing: pricing, settings, invoices, subscriptions, test clocks (clock), periods and meters."""
