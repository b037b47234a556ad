"""Start-up: bad environment values stop it by name; production passes Django's deploy checks."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "tollbooth.example",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/tollbooth",
    "REDIS_URL": "redis://127.0.0.1:6379/1",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
}


def test_production_settings_pass_the_deploy_checks():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG='maybe' is not a boolean"),
        ("TOLLBOOTH_TRIAL_DAYS", "two weeks", "TOLLBOOTH_TRIAL_DAYS='two weeks' is not an integer"),
        ("TOLLBOOTH_TRIAL_DAYS", "-1", "TOLLBOOTH_TRIAL_DAYS=-1 must be at least 0"),
        ("DATABASE_URL", "bogus://x", "DATABASE_URL='bogus://x'"),
        ("CELERY_BROKER_URL", "http://x", "CELERY_BROKER_URL='http://x' must start with one of"),
    ],
)
def test_bad_environment_value_stops_start_up_naming_the_variable(variable, value, message):
    result = _run(["manage.py", "check"], DJANGO_SETTINGS_MODULE="config.settings.development", **{variable: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_production_without_a_secret_key_refuses_to_start():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}
    result = _run(["manage.py", "check"], **env)
    assert result.returncode != 0
    assert "Set the DJANGO_SECRET_KEY environment variable" in result.stderr


def test_unreachable_test_database_stops_the_run_in_one_line():
    result = _run(
        ["-m", "pytest", "tests/test_settings.py", "-q", "-p", "no:cacheprovider"],
        DATABASE_URL="postgres://postgres@127.0.0.1:1/tollbooth",
        DJANGO_SETTINGS_MODULE="config.settings.test",
    )
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "DATABASE_URL" in line]
    assert len(lines) == 1
    assert "Cannot reach PostgreSQL at DATABASE_URL (host 127.0.0.1:1)" in lines[0]


def test_argon2_is_the_first_password_hasher_outside_tests():
    from config.settings import base

    assert base.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_development_defaults_need_no_server(tmp_path):
    """`make run` on an empty machine: the embedded PostgreSQL of var/postgres and a broker that is a folder."""
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'], s.CELERY_BROKER_URL]))"
    )
    result = _run(["-c", code], DJANGO_SETTINGS_MODULE="config.settings.development")
    assert result.returncode == 0, result.stderr
    engine, host, broker = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert engine == "django.db.backends.postgresql"
    assert host == str(ROOT / "var" / "postgres")  # the socket folder of the server `make run` starts
    assert broker == "filesystem://localhost/"


def test_sqlite_is_refused_as_a_database_url():
    result = _run(
        ["manage.py", "check"],
        DJANGO_SETTINGS_MODULE="config.settings.development",
        DATABASE_URL="sqlite:///var/old.sqlite3",
    )
    assert result.returncode != 0
    assert "SQLite is not supported" in result.stderr
