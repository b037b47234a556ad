"""Stripe's cursor pagination and ``created`` filters, shared by every list endpoint.

A list endpoint merges :data:`LIST_PARAMS` into its schema, filters its objects (newest first),
and returns :func:`paginate`'s ``{"object": "list", "data", "has_more", "url"}``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sandbox.core import errors
from sandbox.core import params as P

LIST_PARAMS = {
    "limit": int,
    "starting_after": str,
    "ending_before": str,
    "created": P.ANY,
}


def paginate(params: dict, objects: Iterable[dict], url: str) -> dict:
    """One page of ``objects`` (already newest first) following ``limit``/``starting_after``/``ending_before``."""
    items = list(objects)
    limit = params.get("limit")
    if limit is None:
        limit = 10
    if not 1 <= limit <= 100:
        raise errors.invalid_request("Invalid limit: must be between 1 and 100", "limit")
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise errors.invalid_request(
            "You may only specify one of these parameters: ending_before, starting_after.",
            "ending_before",
            "parameters_exclusive",
        )
    ids = [obj["id"] for obj in items]
    if after:
        if after not in ids:
            raise errors.resource_missing("object", after, "starting_after")
        start = ids.index(after) + 1
        page, has_more = items[start : start + limit], len(items) > start + limit
    elif before:
        if before not in ids:
            raise errors.resource_missing("object", before, "ending_before")
        end = ids.index(before)
        page, has_more = items[max(0, end - limit) : end], end - limit > 0
    else:
        page, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


def created_filter(value, field_name: str = "created"):
    """A predicate for ``created=123`` or ``created[gte]=…&created[lt]=…`` (also used for other timestamps)."""
    if value is None:
        return lambda obj: True
    if isinstance(value, str):
        exact = P.coerce(value, int, field_name)
        return lambda obj: obj[field_name] == exact
    bounds = P.validate(value, {"gt": int, "gte": int, "lt": int, "lte": int}, field_name)

    def matches(obj: dict) -> bool:
        at = obj[field_name]
        return (
            ("gt" not in bounds or at > bounds["gt"])
            and ("gte" not in bounds or at >= bounds["gte"])
            and ("lt" not in bounds or at < bounds["lt"])
            and ("lte" not in bounds or at <= bounds["lte"])
        )

    return matches
