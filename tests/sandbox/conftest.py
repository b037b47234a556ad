from tests.sandbox.fixtures import sandbox, sandbox_server, stripe_client

__all__ = ["sandbox", "sandbox_server", "stripe_client"]
