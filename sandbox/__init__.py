"""A local, stateful server speaking the modern Stripe API, for development and tests.

No product app imports this package: the product only knows a base URL. Start it with
``python -m sandbox --port 12111``; see ``sandbox/README.md``.
"""
