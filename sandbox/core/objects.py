"""Building API objects from Stripe's published example objects.

``fixtures3.json`` (a copy of stripe/openapi's ``openapi/fixtures3.json``) holds one example of
every v1 resource. A sandbox object starts as a deep copy of its resource's example and then gets
every meaningful field filled in, so it has exactly the fields Stripe's own objects have, and a
client library or dj-stripe finds nothing missing and nothing extra. :func:`build` refuses field
names the example does not have, which catches typos at once.

The example file lags the API in one place we rely on: its invoice still carries the top-level
``subscription`` that Stripe removed (API 2025-03-31.basil; the subscription an invoice bills is
``parent.subscription_details.subscription``). :data:`RETIRED_FIELDS` drops such keys from the
templates, so the sandbox answers the current shape and a client that reads the old key finds nothing.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

FIXTURES_PATH = Path(__file__).with_name("fixtures3.json")

# Fields Stripe's current API no longer has although fixtures3.json still shows them (resource → fields).
RETIRED_FIELDS: dict[str, tuple[str, ...]] = {"invoice": ("subscription",)}


@functools.cache
def fixtures() -> dict:
    with FIXTURES_PATH.open() as handle:
        resources = json.load(handle)["resources"]
    for resource, fields in RETIRED_FIELDS.items():
        for field in fields:
            resources[resource].pop(field, None)
    return resources


def template(resource: str) -> dict:
    """A fresh deep copy of the example object of ``resource`` (e.g. ``"customer"``)."""
    return copy.deepcopy(fixtures()[resource])


def build(resource: str, **fields) -> dict:
    """The example of ``resource`` with ``fields`` set; every field must exist in the example."""
    obj = template(resource)
    unknown = set(fields) - set(obj)
    if unknown:
        raise KeyError(f"{resource} has no field(s) {sorted(unknown)}")
    obj.update(fields)
    return obj


def clock_of(obj: dict) -> str | None:
    """The test clock whose time ``obj`` (a customer, subscription, invoice...) lives on, or None."""
    return obj.get("test_clock")


def deleted(resource: str, obj_id: str) -> dict:
    """The ``{"id", "object", "deleted": true}`` answer of a DELETE."""
    return build(f"deleted_{resource}", id=obj_id, object=resource, deleted=True)
