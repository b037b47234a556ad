"""Stripe's test cards and what happens when you use them: the one table every phase consults.

Each test card number has a behaviour (succeed, decline with a code, ask for 3-D Secure, attach
fine but fail to charge, ...). Stripe's test payment method ids (``pm_card_visa``...) and tokens
(``tok_visa``...) name the same cards: ``pm_card_<name>`` and ``tok_<name>`` map through
:data:`TEST_NAMES`. Payment methods keep their card number in the store's hidden ``meta``, and
:func:`charge_outcome` answers what a charge of that payment method does, so the charge,
invoice and payment-intent code never repeats this table.
"""

from __future__ import annotations

import datetime
import hashlib
import string
from dataclasses import dataclass

from sandbox.core import errors
from sandbox.core.store import Store


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str
    message: str


GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")


@dataclass(frozen=True)
class Card:
    number: str
    brand: str
    funding: str = "credit"
    country: str = "US"
    decline: Decline | None = None
    # Stripe checks a card when it is attached to a customer: declining cards fail there already,
    # except the "attach succeeds, charges fail" card (4000000000000341).
    attach_fails: bool = False
    # "always": every payment needs 3-D Secure (off-session ones fail); "setup": only saving it does.
    three_d_secure: str | None = None
    # For the disputes phase: the dispute reason a successful charge of this card turns into.
    dispute_reason: str | None = None
    early_fraud_warning: bool = False

    @property
    def last4(self) -> str:
        return self.number[-4:]


def _declining(number: str, decline: Decline, brand: str = "visa") -> Card:
    return Card(number, brand, decline=decline, attach_fails=True)


CARDS: dict[str, Card] = {
    card.number: card
    for card in [
        Card("4242424242424242", "visa"),
        Card("4000056655665556", "visa", funding="debit"),
        Card("5555555555554444", "mastercard"),
        Card("5200828282828210", "mastercard", funding="debit"),
        Card("5105105105105100", "mastercard", funding="prepaid"),
        Card("378282246310005", "amex"),
        Card("6011111111111117", "discover"),
        Card("3056930009020004", "diners"),
        Card("3566002020360505", "jcb"),
        Card("6200000000000005", "unionpay", country="CN"),
        Card("4000000760000002", "visa", country="BR"),
        Card("4000001240000000", "visa", country="CA"),
        Card("4000000000000077", "visa"),
        _declining("4000000000000002", GENERIC),
        _declining(
            "4000000000009995",
            Decline("card_declined", "insufficient_funds", "Your card has insufficient funds."),
        ),
        _declining("4000000000009987", Decline("card_declined", "lost_card", "Your card was declined.")),
        _declining("4000000000009979", Decline("card_declined", "stolen_card", "Your card was declined.")),
        _declining("4100000000000019", Decline("card_declined", "fraudulent", "Your card was declined.")),
        _declining("4000000000000069", Decline("expired_card", "expired_card", "Your card has expired.")),
        _declining(
            "4000000000000127",
            Decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
        ),
        _declining(
            "4000000000000119",
            Decline(
                "processing_error",
                "processing_error",
                "An error occurred while processing your card. Try again in a little bit.",
            ),
        ),
        _declining(
            "4000000000006975",
            Decline("card_declined", "card_velocity_exceeded", "Your card was declined."),
        ),
        Card("4000000000000341", "visa", decline=GENERIC),
        Card("4000002760003184", "visa", three_d_secure="always"),
        Card("4000000000003220", "visa", three_d_secure="always"),
        Card("4000002500003155", "visa", three_d_secure="setup"),
        Card("4000000000000259", "visa", dispute_reason="fraudulent"),
        Card("4000000000002685", "visa", dispute_reason="product_not_received"),
        Card("4000000000001976", "visa", dispute_reason="inquiry"),
        Card("4000000000005423", "visa", early_fraud_warning=True),
    ]
}

# ``pm_card_<name>`` / ``tok_<name>`` -> card number, as Stripe documents them.
TEST_NAMES: dict[str, str] = {
    "visa": "4242424242424242",
    "visa_debit": "4000056655665556",
    "mastercard": "5555555555554444",
    "mastercard_debit": "5200828282828210",
    "mastercard_prepaid": "5105105105105100",
    "amex": "378282246310005",
    "discover": "6011111111111117",
    "diners": "3056930009020004",
    "jcb": "3566002020360505",
    "unionpay": "6200000000000005",
    "br": "4000000760000002",
    "ca": "4000001240000000",
    "bypassPending": "4000000000000077",
    "chargeDeclined": "4000000000000002",
    "visa_chargeDeclined": "4000000000000002",
    "chargeDeclinedInsufficientFunds": "4000000000009995",
    "visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "chargeDeclinedLostCard": "4000000000009987",
    "visa_chargeDeclinedLostCard": "4000000000009987",
    "chargeDeclinedStolenCard": "4000000000009979",
    "visa_chargeDeclinedStolenCard": "4000000000009979",
    "chargeDeclinedFraudulent": "4100000000000019",
    "radarBlock": "4100000000000019",
    "chargeDeclinedExpiredCard": "4000000000000069",
    "chargeDeclinedIncorrectCvc": "4000000000000127",
    "chargeDeclinedProcessingError": "4000000000000119",
    "visa_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
    "chargeCustomerFail": "4000000000000341",
    "authenticationRequired": "4000002760003184",
    "threeDSecure2Required": "4000000000003220",
    "authenticationRequiredOnSetup": "4000002500003155",
    "createDispute": "4000000000000259",
    "createDisputeProductNotReceived": "4000000000002685",
    "createDisputeInquiry": "4000000000001976",
    "createEarlyFraudWarning": "4000000000005423",
}

DISPLAY_BRANDS = {"amex": "american_express", "diners": "diners_club"}
INCORRECT_NUMBER = "4242424242424241"


def number_for_test_id(test_id: str) -> str | None:
    """The card number behind ``pm_card_visa`` / ``tok_visa``, or None if ``test_id`` names no test card."""
    for prefix in ("pm_card_", "tok_"):
        if test_id.startswith(prefix):
            return TEST_NAMES.get(test_id[len(prefix) :])
    return None


def lookup(number: str, param: str = "card[number]") -> Card:
    """The card for a number; unknown but well-formed numbers behave like a plain successful card."""
    number = number.replace(" ", "")
    if number in CARDS:
        return CARDS[number]
    if number == INCORRECT_NUMBER or not number.isdigit() or not 12 <= len(number) <= 19 or not _luhn(number):
        raise errors.card_error("Your card number is incorrect.", "incorrect_number", param=param)
    return Card(number, _brand(number))


def check_expiry(exp_month: int | None, exp_year: int | None, now: int) -> int | None:
    """The four-digit expiry year, after refusing what Stripe refuses: 402 ``invalid_expiry_month`` (not 1-12, or
    gone by this year) or ``invalid_expiry_year`` (a year in the past). Two-digit years mean 20xx, as on Stripe.
    ``now``: epoch seconds (the sandbox's time)."""
    today = datetime.datetime.fromtimestamp(now, datetime.UTC)
    year = exp_year + 2000 if exp_year is not None and 0 <= exp_year < 100 else exp_year
    if exp_month is not None and not 1 <= exp_month <= 12:
        raise errors.card_error("Your card's expiration month is invalid.", "invalid_expiry_month", param="exp_month")
    if year is not None and year < today.year:
        raise errors.card_error("Your card's expiration year is invalid.", "invalid_expiry_year", param="exp_year")
    if year == today.year and exp_month is not None and exp_month < today.month:
        raise errors.card_error("Your card's expiration month is invalid.", "invalid_expiry_month", param="exp_month")
    return year


def fingerprint(number: str) -> str:
    """A stable 16-character fingerprint per card number (the same card always gets the same one)."""
    digest = hashlib.sha256(f"sandbox-card:{number}".encode()).digest()
    alphabet = string.ascii_letters + string.digits
    return "".join(alphabet[b % len(alphabet)] for b in digest[:16])


def card_of(store: Store, payment_method: dict) -> Card:
    """The test card behind a stored payment method."""
    return lookup(store.meta_for(payment_method["id"])["card_number"])


@dataclass(frozen=True)
class Outcome:
    """What charging a payment method does: ``status`` is ``succeeded``, ``declined`` or ``requires_action``."""

    status: str
    decline: Decline | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def charge_outcome(store: Store, payment_method: dict, *, off_session: bool = False, authenticated: bool = False):
    """What a charge of ``payment_method`` does.

    ``authenticated`` means the customer just passed 3-D Secure for this payment. A card that
    always needs 3-D Secure asks for it on-session, and fails with ``authentication_required``
    off-session (Stripe cannot ask the absent customer).
    """
    card = card_of(store, payment_method)
    if card.decline is not None:
        return Outcome("declined", card.decline)
    if card.three_d_secure == "always" and not authenticated:
        if off_session:
            return Outcome(
                "declined",
                Decline(
                    "authentication_required",
                    "authentication_required",
                    "Your card was declined. This transaction requires authentication.",
                ),
            )
        return Outcome("requires_action")
    return Outcome("succeeded")


def setup_outcome(store: Store, payment_method: dict, *, authenticated: bool = False) -> Outcome:
    """What saving a card for later (a SetupIntent) does."""
    card = card_of(store, payment_method)
    if card.attach_fails and card.decline is not None:
        return Outcome("declined", card.decline)
    if card.three_d_secure in ("always", "setup") and not authenticated:
        return Outcome("requires_action")
    return Outcome("succeeded")


def decline_error(decline: Decline, **extra) -> errors.StripeError:
    """The 402 ``card_error`` a decline produces (``extra``: ``payment_method``, ``charge``, ...)."""
    return errors.card_error(decline.message, decline.code, decline.decline_code, **extra)


def _luhn(number: str) -> bool:
    total = 0
    for i, digit in enumerate(reversed(number)):
        n = int(digit)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    if number.startswith(("6011", "65")):
        return "discover"
    if number.startswith(("35",)):
        return "jcb"
    if number.startswith(("36", "30", "38")):
        return "diners"
    if number.startswith("62"):
        return "unionpay"
    return "unknown"
