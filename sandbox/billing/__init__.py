"""Billing: subscriptions, invoices, invoice items, meters and test clocks (see ``sandbox/README.md``).

- :mod:`sandbox.billing.periods`: billing-period arithmetic (calendar months anchored like Stripe).
- :mod:`sandbox.billing.invoices`: invoices, invoice items, paying them, retries, ``create_preview``.
- :mod:`sandbox.billing.subscriptions`: subscriptions and subscription items, prorations.
- :mod:`sandbox.billing.meters`: billing meters and meter events.
- :mod:`sandbox.billing.clock`: the time-driven work (renewals, trial ends, retries) and test clocks.
"""
