"""The demo catalog, shaped like a helpdesk's: four public plans and a hidden Enterprise plan.

Annual prices cost ten months (two months free). Amounts are cents of USD. Seeded by `manage.py seed_demo`
and by the tests' `catalog` fixture, never by a migration: a production catalog is the business's own.
"""

from django.db import transaction

from plans.models import Entitlement, Plan, PlanPrice

# code, name, rank, public, monthly cents, seats, tickets included, ticket overage cents,
# automated resolutions (included, overage cents) or None, feature flags, description
CATALOG = [
    ("starter", "Starter", 10, True, 1900, 2, 50, 40, None, [], "For a founder answering customers alone."),
    (
        "basic",
        "Basic",
        20,
        True,
        4900,
        5,
        300,
        30,
        None,
        ["api_access"],
        "A small team with a shared inbox and an API.",
    ),
    (
        "pro",
        "Pro",
        30,
        True,
        9900,
        15,
        2000,
        20,
        (500, 50),
        ["api_access", "automation"],
        "Growing shops: automation rules and automated resolutions.",
    ),
    (
        "advanced",
        "Advanced",
        40,
        True,
        19900,
        40,
        5000,
        15,
        (1500, 40),
        ["api_access", "automation", "voice"],
        "Busy support desks with phone support.",
    ),
    (
        "enterprise",
        "Enterprise",
        90,
        False,
        99900,
        200,
        20000,
        10,
        (10000, 25),
        ["api_access", "automation", "voice", "sso"],
        "Negotiated by sales.",
    ),
]


@transaction.atomic
def catalog_seed_demo() -> None:
    """Create or refresh the demo catalog (idempotent: rows are found by plan code, interval and feature)."""
    for code, name, rank, public, monthly, seats, tickets, ticket_overage, automated, flags, description in CATALOG:
        plan, _ = Plan.objects.update_or_create(
            code=code, defaults={"name": name, "rank": rank, "is_public": public, "description": description}
        )
        for interval, amount in (("month", monthly), ("year", monthly * 10)):
            PlanPrice.objects.update_or_create(
                plan=plan, interval=interval, currency="usd", defaults={"amount_cents": amount}
            )
        Entitlement.objects.update_or_create(plan=plan, feature="seats", defaults={"kind": "limit", "limit": seats})
        Entitlement.objects.update_or_create(
            plan=plan,
            feature="tickets",
            defaults={
                "kind": "metered",
                "included_units": tickets,
                "overage_cents": ticket_overage,
                "unit_name": "ticket",
            },
        )
        if automated:
            Entitlement.objects.update_or_create(
                plan=plan,
                feature="automated_resolutions",
                defaults={
                    "kind": "metered",
                    "included_units": automated[0],
                    "overage_cents": automated[1],
                    "unit_name": "automated resolution",
                },
            )
        for flag in flags:
            Entitlement.objects.update_or_create(plan=plan, feature=flag, defaults={"kind": "flag"})
