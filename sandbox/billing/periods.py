"""Billing-period arithmetic.

Stripe anchors monthly and yearly periods on the ``billing_cycle_anchor``: each boundary is the
anchor plus ``k`` intervals, on the anchor's day of month clamped to the month's length (an anchor
on the 31st bills on Feb 28/29, then Mar 31), at the anchor's time of day (UTC).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

DAY = 86400
INTERVAL_SECONDS = {"day": DAY, "week": 7 * DAY}


def add_months(timestamp: int, months: int) -> int:
    start = datetime.fromtimestamp(timestamp, UTC)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def boundary(anchor: int, interval: str, count: int, k: int) -> int:
    """The ``k``-th period boundary after (or, for negative ``k``, before) ``anchor``."""
    if interval == "month":
        return add_months(anchor, k * count)
    if interval == "year":
        return add_months(anchor, 12 * k * count)
    return anchor + INTERVAL_SECONDS[interval] * count * k


def prorate(amount: int, remaining: int, period: int) -> int:
    """``amount`` for ``remaining`` seconds of a ``period``-second period, rounded half up like Stripe."""
    if period <= 0:
        return 0
    numerator = amount * remaining
    sign = -1 if numerator < 0 else 1
    return sign * ((abs(numerator) * 2 + period) // (2 * period))
