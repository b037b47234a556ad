"""Stripe's form encoding, both ways in: decoding nested keys and validating them against a schema.

Stripe clients send ``application/x-www-form-urlencoded`` bodies (and query strings for GET/DELETE)
whose keys carry structure: ``a[b][c]=1``, ``items[0][price]=p``, ``expand[]=x``. :func:`decode`
rebuilds the nested dicts and lists. An empty string means "unset" in Stripe's encoding, so
validation turns ``""`` into ``None`` (or ``{}`` for metadata, which clears it).

A schema is a dict of parameter name to one of: the types ``str``, ``int``, ``bool``;
:data:`ANY` (free-form); :data:`METADATA`; :class:`OneOf` (an enum of strings); :class:`ListOf`
(an array); or a nested schema dict. :func:`validate` raises Stripe's ``parameter_unknown``,
``parameter_invalid_integer``... errors with the param named the way Stripe names it
(``recurring[interval]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox.core import errors

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")

ANY = object()
METADATA = object()


@dataclass(frozen=True)
class OneOf:
    """A string restricted to ``choices``."""

    choices: tuple[str, ...]

    def __init__(self, *choices: str):
        object.__setattr__(self, "choices", choices)


@dataclass(frozen=True)
class ListOf:
    """An array (``x[]=a`` or ``x[0]=a``) of items validated by ``item``."""

    item: Any


def decode(pairs) -> dict:
    """Turn ``[(key, value), ...]`` in Stripe's bracket notation into nested dicts and lists."""
    root: dict = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if not match:
            root[raw_key] = value
            continue
        parts = [match.group(1), *_PART.findall(match.group(2))]
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                # ``x[]`` appends; represent with the next free numeric index so lists come out in order.
                part = str(sum(1 for k in node if k.isdigit())) if isinstance(node, dict) else "0"
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return _listify(root)


def _listify(node):
    """Dicts whose keys are all integers become lists, ordered by index."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def _name(prefix: str, key) -> str:
    return f"{prefix}[{key}]" if prefix else str(key)


def validate(raw: dict, schema: dict, prefix: str = "") -> dict:
    """Check ``raw`` against ``schema`` and coerce its values; returns only the keys that were sent."""
    if not isinstance(raw, dict):
        raise errors.invalid_request(f"Invalid object: {prefix}", prefix or None)
    out = {}
    for key, value in raw.items():
        name = _name(prefix, key)
        if key not in schema:
            raise errors.parameter_unknown(name)
        out[key] = coerce(value, schema[key], name)
    return out


def coerce(value, kind, name: str):
    """Coerce one decoded value to ``kind`` (see the module docstring); ``""`` means unset."""
    if kind is ANY:
        return value
    if kind is METADATA:
        return _metadata(value, name)
    if value == "" and kind is not str:
        return None
    if kind is str:
        if not isinstance(value, str):
            raise errors.invalid_request(f"Invalid string: {name}", name)
        return value if value != "" else None
    if kind is int:
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            return int(value)
        raise errors.invalid_integer(name, value if isinstance(value, str) else "{...}")
    if kind is bool:
        if value in ("true", "false"):
            return value == "true"
        raise errors.invalid_request(f"Invalid boolean: {value}", name)
    if isinstance(kind, OneOf):
        if value not in kind.choices:
            choices = ", ".join(kind.choices)
            raise errors.invalid_request(f"Invalid {name}: must be one of {choices}", name)
        return value
    if isinstance(kind, ListOf):
        if isinstance(value, dict) and not value:
            return []
        if not isinstance(value, list):
            raise errors.invalid_request(f"Invalid array: {name}", name)
        return [coerce(item, kind.item, f"{name}[{i}]") for i, item in enumerate(value)]
    if isinstance(kind, dict):
        return validate(value, kind, name)
    raise TypeError(f"unknown schema kind {kind!r} for {name}")


def _metadata(value, name: str) -> dict:
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise errors.invalid_request(f"Invalid object: {name}", name)
    for key, item in value.items():
        if not isinstance(item, str):
            raise errors.invalid_request(f"Invalid string: {name}[{key}]", f"{name}[{key}]")
    return value


def apply_metadata(current: dict, update: dict | None) -> dict:
    """Stripe's metadata update: keys merge, ``""`` deletes a key, an empty update clears all."""
    if update is None:
        return current
    if not update:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def require(params: dict, *names: str) -> None:
    """Raise ``parameter_missing`` for the first of ``names`` absent (or unset) in ``params``."""
    for name in names:
        if params.get(name) is None:
            raise errors.parameter_missing(name)
