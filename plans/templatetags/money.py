"""Render integer minor units as money: {{ 9900|money:"usd" }} → $99.00."""

from django import template

from plans.models import FEATURE_LABELS

register = template.Library()
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


@register.filter
def money(cents, currency="usd"):
    if cents is None or cents == "":
        return ""
    cents = int(cents)
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    symbol = SYMBOLS.get(str(currency).lower())
    amount = f"{whole:,}.{rest:02d}"
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {str(currency).upper()}"


@register.filter
def feature_label(code: str) -> str:
    """{{ "api_access"|feature_label }} → API access."""
    return FEATURE_LABELS.get(code, str(code).replace("_", " ").capitalize())
