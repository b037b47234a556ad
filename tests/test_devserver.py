"""`make run` refuses, in one line naming the fix, whatever would make it fail later; it touches nothing then."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _devserver(var: Path, **env) -> subprocess.CompletedProcess:
    """`make run`'s program with its own var/ and free ports (a `make run` of this checkout may be running)."""
    env = {"TOLLBOOTH_WEB_ADDRESS": f"127.0.0.1:{_free_port()}", "TOLLBOOTH_SANDBOX_PORT": str(_free_port()), **env}
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "STRIPE_", "TOLLBOOTH_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "config.devserver"],
        cwd=ROOT,
        env={**clean, "TOLLBOOTH_VAR_DIR": str(var), **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_second_run_in_the_same_folder_says_so_at_once(tmp_path):
    """It says so and touches nothing: the first run's embedded database stays up."""
    import psycopg

    from config.embedded_db import embedded_start, embedded_stop

    url = embedded_start(tmp_path / "postgres", database="tollbooth")
    with open(tmp_path / "run.lock", "a+") as held:
        held.write("pid 4242, http://127.0.0.1:8000/")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = _devserver(tmp_path)
    line = _one_line_error(result)
    try:
        assert "Tollbooth is already running from this folder (pid 4242, http://127.0.0.1:8000/)" in line
        with psycopg.connect(url.replace("postgres://", "postgresql://"), connect_timeout=3) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        embedded_stop(tmp_path / "postgres")


def test_a_web_port_in_use_names_the_variable_to_change(tmp_path, busy_port):
    line = _one_line_error(_devserver(tmp_path, TOLLBOOTH_WEB_ADDRESS=f"127.0.0.1:{busy_port}"))
    assert line == f"make run: port {busy_port} on 127.0.0.1 is in use: set TOLLBOOTH_WEB_ADDRESS to another one."
    assert not (tmp_path / "postgres").exists()


def test_a_sandbox_port_in_use_names_the_variable_to_change(tmp_path, busy_port):
    line = _one_line_error(_devserver(tmp_path, TOLLBOOTH_SANDBOX_PORT=str(busy_port)))
    assert line == f"make run: port {busy_port} on 127.0.0.1 is in use: set TOLLBOOTH_SANDBOX_PORT to another one."


def test_an_unreachable_database_url_is_one_line(tmp_path):
    line = _one_line_error(_devserver(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:1/tollbooth"))
    assert line.startswith("make run: cannot reach the database of DATABASE_URL (")
    assert line.endswith("fix it, or unset it for the embedded one.")


def test_an_sqlite_database_url_is_refused(tmp_path):
    line = _one_line_error(_devserver(tmp_path, DATABASE_URL="sqlite:///var/x.sqlite3"))
    assert "SQLite is not supported" in line


def test_a_var_folder_from_the_sqlite_days_is_refused_with_the_fix(tmp_path):
    (tmp_path / "tollbooth.sqlite3").write_bytes(b"SQLite format 3\x00")
    line = _one_line_error(_devserver(tmp_path))
    assert "SQLite is no longer supported" in line and "`make clean`" in line
    assert not (tmp_path / "postgres").exists()


def test_a_data_folder_of_another_postgresql_is_refused(tmp_path):
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "PG_VERSION").write_text("16\n")
    line = _one_line_error(_devserver(tmp_path))
    assert "holds a PostgreSQL 16 database from an older Tollbooth" in line and "`make clean`" in line
    assert sorted(p.name for p in (tmp_path / "postgres").iterdir()) == ["PG_VERSION"]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_data_folder_owned_by_another_user_is_refused(tmp_path):
    data = tmp_path / "postgres"
    data.mkdir()
    (data / "PG_VERSION").write_text("18\n")
    os.chown(data, 54321, 54321)
    line = _one_line_error(_devserver(tmp_path))
    assert "belongs to the user 54321" in line
