"""Sandbox autosave benchmark: how long an API call waits while a big state is saved, old way vs new way.

    python -m bench.sandbox_save [--objects 100000] [--rounds 3]

Builds a sandbox state in-process: a few customers with cards and monthly subscriptions made through
the API (customers, payment methods, subscriptions, invoices, payment intents, charges, events), then
copies of those objects under new ids up to ``--objects``. Serves it with the real server (waitress,
threads) and keeps one client (another process) calling ``GET /v1/customers/{id}`` in a loop, while saving the state:

- old way: ``json.dumps`` of the whole state under the store lock, then the write (the sandbox until now);
- new way: :meth:`sandbox.core.statefile.StateFile.save` (snapshot under the lock, JSON written outside it).

Prints a table: per way, the longest time one API call took while a save was under way (over
``--rounds`` saves), the calls served during the saves, and how long a save took. No saves at all is
the baseline row. Needs no database.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from werkzeug.test import Client

from bench.common import table
from sandbox.app import SandboxApp, make_server
from sandbox.core.statefile import StateFile
from sandbox.core.store import Store

KEY = "sk_test_benchSandboxSave0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


def build_state(store: Store, objects: int) -> str:
    """Fill ``store`` with about ``objects`` objects; returns a customer id to read during the runs."""
    client = Client(SandboxApp(store))

    def post(path: str, data: dict) -> dict:
        response = client.post(path, data=data, headers=AUTH)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    price = post(
        "/v1/prices",
        {"currency": "usd", "unit_amount": "2500", "recurring[interval]": "month", "product_data[name]": "Seat"},
    )
    customer_id = None
    for n in range(20):
        customer = post(
            "/v1/customers",
            {"email": f"bench{n}@example.com", "invoice_settings[default_payment_method]": "pm_card_visa"},
        )
        customer_id = customer_id or customer["id"]
        post("/v1/subscriptions", {"customer": customer["id"], "items[0][price]": price["id"]})
    seeds = [(name, obj) for name, table_ in store.tables.items() for obj in table_.values()]
    with store.lock:
        count = len(seeds)
        while count < objects:
            for name, obj in seeds:
                clone = copy.deepcopy(obj)
                clone["id"] = f"{obj['id'].split('_')[0]}_bench{count:08d}"
                store.tables[name][clone["id"]] = clone
                count += 1
                if count >= objects:
                    break
    return customer_id


def old_save(store: Store, path: str) -> None:
    """The sandbox's save until now: everything serialised while holding the store lock."""
    with store.lock:
        payload = json.dumps(store.dump())
        store.dirty = False
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sandbox-state-")
    with os.fdopen(fd, "w") as handle:
        handle.write(payload)
    os.replace(tmp, path)


CALLER = """
import sys, time, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
while True:
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
    print(start, time.monotonic(), flush=True)
"""


class Caller:
    """Another process calling the API in a loop (as a real client does), recording (start, end) of each call.

    ``time.monotonic`` is one system-wide clock on Linux, so its times compare with this process's.
    """

    def __init__(self, url: str):
        self.calls: list[tuple[float, float]] = []
        self.process = subprocess.Popen([sys.executable, "-c", CALLER, url, KEY], stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self) -> None:
        for line in self.process.stdout:
            start, end = map(float, line.split())
            self.calls.append((start, end))

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.thread.join()

    def during(self, start: float, end: float) -> list[float]:
        """Durations of the calls that overlapped ``[start, end]``."""
        return [b - a for a, b in list(self.calls) if a < end and b > start]


def measure(caller: Caller, save, rounds: int) -> tuple[float, int, float]:
    longest, served, took = 0.0, 0, 0.0
    for _ in range(rounds):
        time.sleep(0.5)  # calls flow again before the next save
        start = time.monotonic()
        save()
        end = time.monotonic()
        waits = caller.during(start, end)
        longest = max([longest, *waits])
        served += len(waits)
        took = max(took, end - start)
    return longest, served, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    store = Store()
    started = time.monotonic()
    customer_id = build_state(store, args.objects)
    objects = sum(len(t) for t in store.tables.values())
    print(f"built {objects} objects in {time.monotonic() - started:.1f} s")

    server = make_server(SandboxApp(store), "127.0.0.1", 0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    caller = Caller(f"http://127.0.0.1:{server.effective_port}/v1/customers/{customer_id}")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "state.json")
        state_file = StateFile(store, path)
        rows = []
        time.sleep(1.0)  # the caller is up
        start = time.monotonic()
        time.sleep(2.0)
        baseline = caller.during(start, time.monotonic())
        rows.append(["no save (baseline)", f"{max(baseline) * 1000:.0f}", len(baseline), "-"])
        for name, save in (
            ("old: json.dumps under the lock", lambda: old_save(store, path)),
            ("new: snapshot under the lock, write outside", state_file.save),
        ):
            longest, served, took = measure(caller, save, args.rounds)
            rows.append([name, f"{longest * 1000:.0f}", served, f"{took:.2f}"])
        size = os.path.getsize(path) / 1e6
    caller.close()
    server.close()
    print(
        table(
            f"Sandbox autosave, {objects} objects ({size:.0f} MB of JSON), {args.rounds} saves each",
            ["way", "longest API call during a save (ms)", "calls served during saves", "slowest save (s)"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
