"""dj-stripe's mirror: taught the one shape of Stripe's current API it does not know, and written only on a change.

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

import json

from billing.stripe.client import stripe_api_key
from billing.stripe.objects import invoice_subscription_id

_UNREAD = object()


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


def mirror_sync(model, data, *, stored=_UNREAD) -> bool:
    """Write Stripe's `data` into dj-stripe's `model` mirror unless the row already holds exactly that object;
    True when it wrote. dj-stripe's sync re-saves the object and every nested one (a subscription's items, an
    invoice's lines: some twenty queries), which is most of applying an event, while most events re-read an
    object the mirror already has (a duplicate, an older event, a subscription an invoice event refreshes
    again). `stored`: the row's `stripe_data` when the caller read it already (None: no row)."""
    if stored is _UNREAD:
        stored = model.objects.filter(id=data["id"]).values_list("stripe_data", flat=True).first()
    plain = json.loads(str(data)) if hasattr(data, "to_dict") else data  # as dj-stripe stores it
    if stored is not None and stored == plain:
        return False
    model.sync_from_stripe_data(data, api_key=stripe_api_key())
    return True
