"""Stripe's minimum charge amounts, in minor units (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).

A payment intent (and so a charge) for less is refused with 400 ``amount_too_small``. Invoices are not refused:
one whose amount due is under the minimum is finalized with ``amount_due`` 0 (so it is paid at once) and the amount
moves to the customer's balance as a debit (``ending_balance``), collected with the next invoice
(:func:`sandbox.billing.invoices.collect.finalize`).
"""

from __future__ import annotations

from sandbox.core import errors

# Zero-decimal currencies (jpy) are in whole units, as Stripe's amounts are.
MINIMUM_CHARGE = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "aud": "$", "cad": "$", "nzd": "$", "sgd": "$"}
DEFAULT_MINIMUM = 50  # currencies not in the table: Stripe converts to the account's currency (usd here)


def minimum_charge(currency: str) -> int:
    return MINIMUM_CHARGE.get(currency.lower(), DEFAULT_MINIMUM)


def is_too_small(amount: int, currency: str) -> bool:
    return amount < minimum_charge(currency)


def check_amount(amount: int, currency: str, param: str = "amount") -> None:
    """Refuse a payment amount under the currency's minimum, as Stripe does (400 ``amount_too_small``)."""
    if is_too_small(amount, currency):
        minimum = minimum_charge(currency)
        shown = f"{minimum}" if currency.lower() == "jpy" else f"{minimum / 100:.2f}"
        symbol = SYMBOLS.get(currency.lower(), "")
        raise errors.invalid_request(
            f"Amount must be at least {symbol}{shown} {currency.lower()}", param, "amount_too_small"
        )
