"""Blocklist values: validated and normalised per kind, and the lookups the checks make."""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q
from django.utils import timezone
from django_countries import countries

from fraud.models import BlocklistEntry, BlocklistKind

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
FINGERPRINT_RE = re.compile(r"^[A-Za-z0-9]{8,64}$")


def blocklist_value_normalize(*, kind: str, value: str) -> str:
    """The canonical form of a blocklist value, or ValidationError saying what is wrong with it."""
    value = (value or "").strip()
    if not value:
        raise ValidationError("Enter a value.")
    if kind == BlocklistKind.EMAIL:
        value = value.lower()
        validate_email(value)
        return value
    if kind == BlocklistKind.EMAIL_DOMAIN:
        value = value.lower().lstrip("@")
        if not DOMAIN_RE.match(value):
            raise ValidationError(f"{value!r} is not a domain name (e.g. example.com).")
        return value
    if kind == BlocklistKind.IP:
        try:
            # strict=False accepts 203.0.113.7/24 and keeps the network it names (203.0.113.0/24).
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValidationError(f"{value!r} is not an IP address or CIDR range (e.g. 203.0.113.0/24).") from None
        return str(network) if "/" in value else str(network.network_address)
    if kind == BlocklistKind.CARD_FINGERPRINT:
        if not FINGERPRINT_RE.match(value):
            raise ValidationError("A card fingerprint is 8 to 64 letters and digits, as Stripe shows it.")
        return value
    if kind == BlocklistKind.COUNTRY:
        code = value.upper()
        if code not in dict(countries):
            raise ValidationError(f"{value!r} is not an ISO 3166 country code (e.g. FR).")
        return code
    raise ValidationError(f"Unknown kind {kind!r}.")


def _live():
    return BlocklistEntry.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))


def blocklist_matches(
    *,
    email: str = "",
    ip: str | None = None,
    fingerprint: str = "",
    countries_: tuple[str, ...] = (),
) -> list[str]:
    """The kinds of live entries that match (empty when none). Two queries at most."""
    email = (email or "").lower()
    domain = email.rpartition("@")[2] if "@" in email else ""
    exact = Q(pk__in=[])
    if email:
        exact |= Q(kind=BlocklistKind.EMAIL, value=email)
    if domain:
        # A listed domain also covers its subdomains (mail.spam.example under spam.example).
        parts = domain.split(".")
        suffixes = [".".join(parts[i:]) for i in range(len(parts) - 1)]
        exact |= Q(kind=BlocklistKind.EMAIL_DOMAIN, value__in=suffixes)
    if fingerprint:
        exact |= Q(kind=BlocklistKind.CARD_FINGERPRINT, value=fingerprint)
    codes = [c.upper() for c in countries_ if c]
    if codes:
        exact |= Q(kind=BlocklistKind.COUNTRY, value__in=codes)
    found = set(_live().filter(exact).values_list("kind", flat=True))
    if ip:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            address = None
        if address is not None:
            for value in _live().filter(kind=BlocklistKind.IP).values_list("value", flat=True):
                if address in ipaddress.ip_network(value, strict=False):
                    found.add(BlocklistKind.IP)
                    break
    return sorted(found)
