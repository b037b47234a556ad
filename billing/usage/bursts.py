"""Usage bursts: billing reads each account's last day of usage and hands it to fraud."""

from __future__ import annotations

from django.utils import timezone

from accounts.models import Account
from billing.usage.selectors import accounts_with_recent_usage, usage_by_metric
from fraud import services as fraud


def account_usage_burst_check(*, account: Account):
    """Hand fraud the account's last day of usage; returns fraud's burst assessment, if one fired."""
    if not fraud.usage_burst_due(account=account):
        return None
    usage = usage_by_metric(account=account, since=timezone.now() - fraud.BURST_WINDOW)
    return fraud.usage_burst_check(account=account, usage_by_metric=usage)


def usage_bursts_scan() -> int:
    """Check every account that reported usage in the last day; returns how many were flagged."""
    since = timezone.now() - fraud.BURST_WINDOW
    flagged = 0
    # 500 accounts a round trip: each check is a few small queries, and the iterator keeps memory flat.
    for account in accounts_with_recent_usage(since=since).iterator(chunk_size=500):
        if account_usage_burst_check(account=account) is not None:
            flagged += 1
    return flagged
