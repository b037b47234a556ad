"""Stripe's minimum charge amounts, in minor units (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).

Stripe charges no invoice whose amount due is under the minimum: it is marked paid with nothing charged and the
amount is added to the customer's balance, collected with the next invoice. A preview must say so (an upgrade of a
few cents is "nothing now, 0.33 on your next invoice"), not promise a charge that will not happen.
"""

from __future__ import annotations

MINIMUM_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500, "dkk": 250,
    "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50, "mxn": 1000, "myr": 200, "nok": 300,
    "nzd": 50, "pln": 200, "ron": 200, "sek": 300, "sgd": 50, "thb": 1000,
}  # fmt: skip


def due_now_and_carried(*, amount_due: int, currency: str) -> tuple[int, int]:
    """(charged now, carried to the next invoice) of an invoice whose amount due is `amount_due`."""
    if 0 < amount_due < MINIMUM_CHARGE.get(currency.lower(), 50):
        return 0, amount_due
    return amount_due, 0
