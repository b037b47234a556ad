from tests.sandbox.fixtures import client, sandbox, sandbox_server

__all__ = ["client", "sandbox", "sandbox_server"]
