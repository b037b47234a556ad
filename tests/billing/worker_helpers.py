"""Real Celery worker processes and Redis servers of a test's own, for tests/billing/test_stripe_events_worker.py.

A worker is `python -m celery -A tests.billing.worker_helpers worker --pool=solo ...`: Celery takes this module's
`app`, which is config's app made to reach, in the worker's process, what the test's process reaches. The worker
runs config.settings.test, but the test session points Stripe at the sandbox in its own process only
(tests/conftest.py), the settings keep mail in a local outbox and run tasks eagerly, and Redis's default visibility
timeout is an hour; the environment the test gives the worker says what to use instead (`worker_env`).

Nothing here touches Django at import: the worker imports this module before Django is set up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server")
QUEUE = "celery"  # Celery's default queue: where process_stripe_event goes (no routes are configured)


def wait_for(check, *, what: str, timeout: float = 120, log=None):
    """Poll `check` until it returns something truthy (returned); fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout:.0f} s: {what}" + (f"\n{log()}" if log else ""))
        time.sleep(0.2)
    return found


def transport_options(visibility_timeout: int) -> dict:
    """Redis hands an unacknowledged message to a worker again `visibility_timeout` seconds after delivering it;
    workers look for such messages every second (Kombu's default: every 100 s)."""
    return {"visibility_timeout": visibility_timeout, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}


class RedisServer:
    """A redis-server that saves nothing: stopped and started again, it is back on the same port, empty."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*command, "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for(self._answers, what=f"redis-server answering on port {self.port}", timeout=30)
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        _end(self.process)
        self.process = None


class Worker:
    """One worker process (solo pool: one task at a time, in the process itself), its output in a log file."""

    def __init__(self, name: str, env: dict, log_path: Path) -> None:
        self.name, self.env, self.log_path = name, env, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        command = [sys.executable, "-m", "celery", "-A", __name__, "worker", "--pool=solo", "--concurrency=1"]
        command += ["-Q", QUEUE, "-n", f"{self.name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--loglevel=INFO"], cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(self._ready, what=f"worker {self.name} ready", log=self.log)
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited with {self.process.returncode}:\n{self.log()}")
        return " ready." in self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tasks(self, state: str) -> list[str]:
        """The ids of the process_stripe_event tasks this worker logged as `state` (received, succeeded)."""
        marker = "Task billing.process_stripe_event["
        return [
            line.split(marker)[1].split("]")[0] for line in self.log().splitlines() if marker in line and state in line
        ]

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, nothing acknowledged, the process gone at once."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        _end(self.process)


def _end(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:  # a warm shutdown waits for the task at hand: do not wait for it
        process.kill()
        process.wait(timeout=30)


def worker_env(
    *, database: dict, broker: str, stripe_host: str, stripe_key: str, smtp_port: int, options: dict
) -> dict:
    """The worker's environment: the test's database (pytest-django's, read from the test's settings), broker,
    sandbox and SMTP server."""
    credentials = quote(database["USER"]) + (f":{quote(database['PASSWORD'])}" if database.get("PASSWORD") else "")
    host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    if host.startswith("/"):  # a Unix socket's folder (the embedded PostgreSQL of `make test`): libpq's form
        url = f"postgres://{credentials}@/{database['NAME']}?host={quote(host)}&port={port}"
    else:
        url = f"postgres://{credentials}@{host}:{port}/{database['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": broker,
        "STRIPE_TEST_SECRET_KEY": stripe_key,
        "TB_WORKER_STRIPE_API_HOST": stripe_host,
        "TB_WORKER_SMTP_PORT": str(smtp_port),
        "TB_WORKER_TRANSPORT_OPTIONS": json.dumps(options),
    }


def _worker_app():
    """In the worker's process: config's Celery app, with the settings of `worker_env` applied."""
    import stripe
    from django.conf import settings

    from config.celery import app

    settings.STRIPE_API_HOST = stripe.api_base = os.environ["TB_WORKER_STRIPE_API_HOST"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", int(os.environ["TB_WORKER_SMTP_PORT"])
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    # What the worker queues itself (a task a service queues) goes to the broker, as in production.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    app.conf.broker_transport_options = json.loads(os.environ["TB_WORKER_TRANSPORT_OPTIONS"])
    return app


def __getattr__(name: str):
    # Celery's `-A tests.billing.worker_helpers` reads `app`; the test's process never does.
    if name == "app":
        return _worker_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
