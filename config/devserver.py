"""`make run`: the whole product on one machine — web, Celery worker and beat, and the Stripe sandbox.

Embedded defaults need no server (SQLite in var/, a folder as the broker, the sandbox on 12111);
each gives way to the real thing when its variable is set (see the README's configuration table).
Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
WEB_ADDRESS = os.environ.get("TOLLBOOTH_WEB_ADDRESS", "127.0.0.1:8000")
SANDBOX_PORT = 12111
PY = sys.executable


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _wait_for_port(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(host, port):
            return True
        time.sleep(0.2)
    return False


def _manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.development")
    VAR.mkdir(exist_ok=True)
    for folder in ("broker/out", "broker/processed", "broker/control"):
        (VAR / folder).mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen] = []

    use_sandbox = "STRIPE_API_HOST" not in os.environ and "STRIPE_TEST_SECRET_KEY" not in os.environ
    if use_sandbox:
        if _port_open("127.0.0.1", SANDBOX_PORT):
            print(f"Stripe sandbox: already running on port {SANDBOX_PORT}, using it.")
        else:
            children.append(
                subprocess.Popen(
                    [PY, "-m", "sandbox", "--port", str(SANDBOX_PORT), "--state-file", str(VAR / "sandbox.json")],
                    cwd=ROOT,
                )
            )
            if not _wait_for_port("127.0.0.1", SANDBOX_PORT, 15):
                print("The Stripe sandbox did not start; see its output above.", file=sys.stderr)
                _stop(children)
                return 1

    try:
        print("Preparing the database (the first run applies every migration: a minute or two on SQLite)…")
        _manage("migrate", "--noinput", "-v", "0")
        _manage("seed_demo")
        _manage("seed_fraud_demo")  # ops joins the "fraud" group; one flagged signup waits in the review queue
        if use_sandbox:
            # The catalog and the webhook endpoint on the sandbox; both commands are idempotent.
            _manage("sync_plans")
            _manage("setup_webhooks", "--base-url", f"http://{WEB_ADDRESS}")
        web_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        children.append(subprocess.Popen([PY, "manage.py", "runserver", WEB_ADDRESS], cwd=ROOT, env=web_env))
        celery = [PY, "-m", "celery", "-A", "config"]
        children.append(subprocess.Popen([*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"], cwd=ROOT))
        children.append(subprocess.Popen([*celery, "beat", "--loglevel", "INFO"], cwd=ROOT))
    except subprocess.CalledProcessError as error:
        print(f"Set-up failed: {error}", file=sys.stderr)
        _stop(children)
        return 1

    host, _, port = WEB_ADDRESS.partition(":")
    _wait_for_port(host, int(port), 30)
    base = f"http://{WEB_ADDRESS}"
    print(
        "\n"
        "  Tollbooth is running.\n"
        f"    Site:        {base}/\n"
        f"    Merchant:    {base}/accounts/login/   owner@demo.tollbooth.test / tollbooth-demo\n"
        f"    Ops (admin): {base}/admin/            ops@demo.tollbooth.test / tollbooth-ops\n"
        f"    API docs:    {base}/api/docs/\n"
        f"    Stripe:      {f'sandbox on http://127.0.0.1:{SANDBOX_PORT}' if use_sandbox else 'as configured'}\n"
        "    Emails (verification links) are printed here, on the console.\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("A process stopped; stopping the rest.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(children)


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    sys.exit(main())
