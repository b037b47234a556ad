"""The sandbox's API resources, one module each.

A module registers its endpoints with :func:`sandbox.core.routing.route` when imported; adding a
resource means writing its module and appending its name to :data:`MODULES`.
"""

from __future__ import annotations

import importlib

MODULES = [
    "sandbox.resources.events",
    "sandbox.resources.helpers",
    "sandbox.resources.account",
    "sandbox.resources.customers",
    "sandbox.resources.products",
    "sandbox.resources.prices",
    "sandbox.resources.payment_methods",
    "sandbox.resources.payment_intents",
    "sandbox.resources.setup_intents",
    "sandbox.resources.charges",
    "sandbox.resources.refunds",
    "sandbox.resources.disputes",
    "sandbox.resources.early_fraud_warnings",
    "sandbox.pages.three_d_secure",
    "sandbox.resources.webhook_endpoints",
    "sandbox.resources.checkout",
    "sandbox.pages.checkout",
    "sandbox.billing.meters",
    "sandbox.billing.invoices.api",
    "sandbox.billing.invoices.items",
    "sandbox.pages.invoice",
    "sandbox.pages.invoice_pdf",
    "sandbox.billing.subscriptions.api",
    "sandbox.billing.subscriptions.preview",
    "sandbox.billing.clock",
]


def load_all() -> None:
    """Import every resource module (idempotent: Python imports each once, so routes register once)."""
    for name in MODULES:
        importlib.import_module(name)
