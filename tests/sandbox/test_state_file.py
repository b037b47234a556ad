"""``--state-file``: what one run creates, the next run still has."""

from __future__ import annotations

import subprocess
import sys

import stripe

from tests.sandbox.fixtures import REPO_ROOT, TEST_API_KEY


def start(state_file) -> tuple[subprocess.Popen, stripe.StripeClient]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--state-file", str(state_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = process.stdout.readline().split()[-1]
    return process, stripe.StripeClient(TEST_API_KEY, base_addresses={"api": url}, max_network_retries=0)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)
    process.stdout.close()


def test_state_survives_a_restart(tmp_path):
    state_file = tmp_path / "sandbox.json"
    process, client = start(state_file)
    try:
        customer = client.v1.customers.create(params={"email": "kept@example.com"})
        account_id = client.v1.accounts.retrieve_current().id
    finally:
        stop(process)
    assert state_file.exists()
    process, client = start(state_file)
    try:
        assert client.v1.customers.retrieve(customer.id).email == "kept@example.com"
        assert client.v1.accounts.retrieve_current().id == account_id
        assert client.v1.events.list().data[0].type == "customer.created"
    finally:
        stop(process)
