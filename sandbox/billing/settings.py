"""The sandbox's billing settings (``/_sandbox/billing/settings``): retries, finalize delay, notice periods."""

from __future__ import annotations

import copy

from sandbox.core.store import Store

SETTINGS_KEY = "_sandbox_billing_settings"
DEFAULT_SETTINGS = {
    # Days between successive payment attempts after a failed renewal (Stripe's smart-retry default is
    # about 4 attempts over 2 weeks); after the last one fails, the subscription ends per after_final_failure.
    "retry_days": [3, 5, 7],
    "after_final_failure": "canceled",  # or "unpaid", "past_due"
    # A renewal invoice is created as a draft and finalized (then charged) this many seconds later.
    "finalize_delay": 3600,
    # invoice.upcoming this many days before a renewal.
    "upcoming_days": 3,
    # customer.subscription.trial_will_end this many days before a trial ends.
    "trial_will_end_days": 3,
    # An incomplete subscription expires this long after creation.
    "incomplete_expires": 23 * 3600,
}


def settings(store: Store) -> dict:
    current = store.meta_for(SETTINGS_KEY)
    for key, value in DEFAULT_SETTINGS.items():
        current.setdefault(key, copy.deepcopy(value))
    return current
