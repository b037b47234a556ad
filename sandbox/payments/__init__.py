"""Payments: the payment and setup intent engine (pay(), its hooks) and the test cards."""
