"""Invoices: drafts from charge specs (drafts), finalizing and paying them (collect), invoice items, endpoints."""
