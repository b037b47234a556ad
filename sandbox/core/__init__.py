"""The sandbox's core: the store and its state file, routing, params, errors, lists, expand, idempotency, objects."""
