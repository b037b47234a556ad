"""Small request helpers shared by pages and the API."""

from django.conf import settings


def client_ip(request) -> str | None:
    """The caller's IP. Behind a proxy, trust X-Forwarded-For only as far as TRUSTED_PROXY_COUNT hops."""
    hops = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR") or None


def client_country(request) -> str:
    """The caller's country as a trusted proxy or CDN states it (FRAUD_IP_COUNTRY_HEADER), or "" when unknown."""
    header = getattr(settings, "FRAUD_IP_COUNTRY_HEADER", "")
    value = (request.META.get(header, "") if header else "").strip().upper()
    return value if len(value) == 2 and value.isalpha() and value != "XX" else ""
