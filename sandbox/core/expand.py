"""``expand[]``: replace id strings in a response by the objects they name.

A path is dotted (``default_source``, ``data.customer``, ``invoice_settings.default_payment_method``,
``latest_invoice.payment_intent``); lists (like a list response's ``data``) are walked element by
element. Paths that lead nowhere are ignored rather than refused: dj-stripe asks for includable
fields (``sources``, ``currency_options``, ``tiers``) that the sandbox does not model, and Stripe
would have answered them.
"""

from __future__ import annotations

import copy

from sandbox.core.store import Store


def expand(store: Store, obj, paths: list[str]):
    """Expand ``paths`` in ``obj`` in place (``obj`` must already be a copy) and return it."""
    for path in paths:
        _expand_path(store, obj, path.split("."))
    return obj


def _expand_path(store: Store, node, parts: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _expand_path(store, item, parts)
        return
    if not isinstance(node, dict) or not parts:
        return
    key, rest = parts[0], parts[1:]
    value = node.get(key)
    if isinstance(value, str):
        target = store.find_by_id(value)
        if target is None:
            return
        value = copy.deepcopy(target)
        node[key] = value
    if rest:
        _expand_path(store, value, rest)
