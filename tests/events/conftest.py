import pytest

from tests.events.receiver import receiver_start


@pytest.fixture
def receiver():
    """A real HTTP server receiving our webhooks, verifying them with the documented helper."""
    servers = []

    def start():
        state, server = receiver_start()
        servers.append(server)
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
