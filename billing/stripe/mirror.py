"""dj-stripe's mirror, taught the one shape of Stripe's current API it does not know.

Stripe's API (since 2025-03-31.basil) has no top-level `subscription` on an invoice: the subscription it bills
is `parent.subscription_details.subscription`. dj-stripe 2.11 fills `Invoice.subscription` from the top-level key
only, so without help every mirrored invoice would lose its subscription.

The fix sits in `_manipulate_stripe_object_hook`, the hook dj-stripe calls on every object just before it maps it
to a row ("use this to populate custom fields from stripe data"). That one place covers every way an invoice
reaches the mirror: dj-stripe's own webhook processing (`invoice.*` events re-retrieve and sync), our
`invoice_refresh`, reconciliation, and a subscription's `latest_invoice` synced in passing. dj-stripe then links
(or fetches) the subscription through its usual foreign-key machinery, which already guards against the
invoice ↔ subscription recursion. A post_save receiver could not do as well: it would run after the row is
written, once per nested save, and would have to fetch the subscription itself outside that guard.
"""

from __future__ import annotations

from billing.stripe.objects import invoice_subscription_id


def _invoice_data_with_subscription(cls, data):
    """A copy of the invoice data with the top-level `subscription` dj-stripe reads; `stripe_data` keeps Stripe's
    own shape (dj-stripe stores the data it was given, not this copy)."""
    data = _djstripe_hook(cls, data)
    if data.get("object") != "invoice" or data.get("subscription"):
        return data
    subscription_id = invoice_subscription_id(data)
    return {**data, "subscription": subscription_id} if subscription_id else data


_djstripe_hook = None  # dj-stripe's own hook (a plain function of cls, data), called first


def mirror_link_invoice_subscriptions() -> None:
    """Install the hook on dj-stripe's invoice models (once, from `BillingConfig.ready`)."""
    global _djstripe_hook
    from djstripe.models.billing import BaseInvoice

    if _djstripe_hook is not None:
        return
    _djstripe_hook = BaseInvoice._manipulate_stripe_object_hook.__func__
    BaseInvoice._manipulate_stripe_object_hook = classmethod(_invoice_data_with_subscription)
