"""Dunning: cases opened by failed payments, grace and suspension, and the card update page."""
