"""Shared set-up for the billing tests: a customer on a test clock, prices, advancing."""

from __future__ import annotations

from datetime import UTC, datetime

DAY = 86400
HOUR = 3600
# 2026-01-01T00:00:00Z: a month of 31 days follows, then February's 28.
T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


def ts(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


def price(client, amount: int, interval: str = "month", name: str = "Pro", **recurring):
    return client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": interval, **recurring},
            "product_data": {"name": name},
        }
    )


def clock_customer(client, frozen_time: int = T0, payment_method: str | None = "pm_card_visa"):
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": frozen_time})
    params = {"test_clock": clock.id, "email": "billing@example.com"}
    if payment_method:
        params["invoice_settings"] = {"default_payment_method": payment_method}
    return clock, client.v1.customers.create(params=params)


def advance(client, clock, to: int):
    return client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": to})


def invoices_of(client, customer_id: str) -> list:
    """The customer's invoices, oldest first."""
    return list(reversed(client.v1.invoices.list(params={"customer": customer_id, "limit": 100}).data))


def event_types(client, prefix: str = "") -> list[str]:
    """Event types oldest first (only the first 100 events)."""
    events = client.v1.events.list(params={"limit": 100}).data
    return [e.type for e in reversed(events) if e.type.startswith(prefix)]


def proration(amount: int, remaining: int, period: int) -> int:
    """Stripe's proration, computed independently: the nearest cent (halves up)."""
    return int(amount * remaining / period + 0.5)
