"""Shared set-up of the benchmarks: a throw-away PostgreSQL database, migrated, and Django pointed at it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tollbooth")
BENCH_DB = os.environ.get("BENCH_DATABASE_NAME", "tollbooth_bench")
PLATFORM_TOKEN = "bench-platform-token-0123456789abcdef0123"


def bench_url() -> str:
    parts = urlsplit(BASE_URL)
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def bench_env() -> dict:
    """The environment the benchmark's Django (in-process, or gunicorn) runs with."""
    return {
        **os.environ,
        # Persistent connections, as production runs (DATABASE_CONN_MAX_AGE, 60 s by default): without them
        # every request opens a PostgreSQL connection, which costs more than the batch of 100 it carries.
        "DATABASE_URL": f"{bench_url()}?conn_max_age=60",
        "DJANGO_SETTINGS_MODULE": "config.settings.development",
        "DJANGO_DEBUG": "false",  # DEBUG keeps every query in memory and slows every request
        "LOG_LEVEL": "WARNING",
        "TOLLBOOTH_PLATFORM_TOKEN": PLATFORM_TOKEN,
    }


def fresh_database() -> None:
    """Drop and re-create the benchmark database, migrate it and seed the demo catalog (no migration does)."""
    import psycopg

    parts = urlsplit(BASE_URL)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=bench_env(), check=True)
    subprocess.run([sys.executable, "manage.py", "seed_demo", "--catalog-only"], cwd=ROOT, env=bench_env(), check=True)


def django_setup() -> None:
    os.environ.update(bench_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [title, line]
    for n, row in enumerate(cells):
        out.append(
            " | ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if n == 0:
            out.append(line)
    out.append(line)
    return "\n".join(out)
