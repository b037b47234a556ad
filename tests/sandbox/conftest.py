# The sandbox fixtures (`sandbox_server`, `sandbox`, `stripe_client`) come from tests/conftest.py, so the
# whole session shares one sandbox server: the one the product's settings point at.
