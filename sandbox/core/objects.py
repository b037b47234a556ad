"""Building API objects from Stripe's published example objects.

``fixtures3.json`` (a copy of stripe/openapi's ``openapi/fixtures3.json``) holds one example of
every v1 resource. A sandbox object starts as a deep copy of its resource's example and then gets
every meaningful field filled in, so it has exactly the fields Stripe's own objects have, and a
client library or dj-stripe finds nothing missing and nothing extra. :func:`build` refuses field
names the example does not have, which catches typos at once.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

FIXTURES_PATH = Path(__file__).with_name("fixtures3.json")


@functools.cache
def fixtures() -> dict:
    with FIXTURES_PATH.open() as handle:
        return json.load(handle)["resources"]


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
