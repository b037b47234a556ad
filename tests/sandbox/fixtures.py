"""A sandbox server for the test session, driven only over HTTP.

``sandbox_server`` starts ``python -m sandbox --port 0`` in a subprocess once per session (the
server picks a free port and prints it), and stops it at the end. Tests talk to it through the
``stripe`` package (:meth:`SandboxServer.client`) or plain HTTP (:meth:`SandboxServer.request`),
never by importing the sandbox, so they exercise exactly what a client sees.

The server runs with ``SANDBOX_WEBHOOK_RETRY_SCHEDULE=fast``: a failed webhook delivery is retried within
seconds (after 1, 2, 4, 8 s; 5 attempts) rather than on Stripe's 3-day schedule, so
``/_sandbox/webhooks/flush`` waits for every retry; ``/_sandbox/webhooks/config`` with ``reset=true`` comes
back to it. Tests of Stripe's schedule ask for it (``retry_schedule=stripe``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import stripe

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_API_KEY = "sk_test_sandboxTestKey0123456789abcdef"
FAST = "fast"  # the webhook retry schedule of the session's server


@dataclass
class Reply:
    status: int
    headers: dict
    body: dict


@dataclass
class SandboxServer:
    base_url: str
    api_key: str
    process: subprocess.Popen

    def client(self, api_key: str | None = None) -> stripe.StripeClient:
        """A ``stripe`` client bound to this server (no global ``stripe.api_base`` is touched)."""
        return stripe.StripeClient(
            api_key or self.api_key, base_addresses={"api": self.base_url}, max_network_retries=0
        )

    def reset(self) -> None:
        """Forget all state on the server."""
        self.request("POST", "/_sandbox/reset", api_key=None)

    def request(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]] | dict | None = None,
        *,
        api_key: str | None = "default",
        headers: dict | None = None,
        timeout: float = 10,
    ) -> Reply:
        """A raw HTTP request; ``params`` go in the query (GET/DELETE) or form body (POST)."""
        encoded = urllib.parse.urlencode(params or {})
        url = self.base_url + path
        data = None
        if method in ("GET", "DELETE") and encoded:
            url += "?" + encoded
        elif method == "POST":
            data = encoded.encode()
        request = urllib.request.Request(url, data=data, method=method)
        if api_key:
            request.add_header("Authorization", f"Bearer {self.api_key if api_key == 'default' else api_key}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Reply(response.status, dict(response.headers), json.loads(response.read()))
        except urllib.error.HTTPError as error:
            return Reply(error.code, dict(error.headers), json.loads(error.read()))


@pytest.fixture(scope="session")
def sandbox_server():
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT,
        env={**os.environ, "SANDBOX_WEBHOOK_RETRY_SCHEDULE": FAST},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"sandbox did not start (exit code {process.poll()}): {line!r}")
        server = SandboxServer(base_url=line.split()[-1], api_key=TEST_API_KEY, process=process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        process.stdout.close()


@pytest.fixture
def sandbox(sandbox_server):
    """The session's server, emptied before the test."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def stripe_client(sandbox) -> stripe.StripeClient:
    return sandbox.client()
