"""Read the environment through one helper that refuses bad values loudly.

django-environ parses the values; this module adds what it leaves out: a bad boolean or integer
stops start-up with a message naming the variable instead of silently becoming False or crashing
with a bare ValueError deep inside a setting.
"""

from __future__ import annotations

import environ
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()
_NOT_SET = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, default):
    value = _env.str(name, default=None)
    if value is None:
        if default is _NOT_SET:
            raise ImproperlyConfigured(f"Set the {name} environment variable.")
        return None
    return value


def env_str(name: str, default=_NOT_SET) -> str:
    value = _raw(name, default)
    return default if value is None else value


def env_bool(name: str, default: bool | object = _NOT_SET) -> bool:
    value = _raw(name, default)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no, on/off).")


def env_int(name: str, default: int | object = _NOT_SET, *, minimum: int | None = None) -> int:
    value = _raw(name, default)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    return number


def env_list(name: str, default: list[str] | object = _NOT_SET) -> list[str]:
    value = _raw(name, default)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_db(name: str, default: str | object = _NOT_SET) -> dict:
    value = _raw(name, default)
    url = default if value is None else value
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # django-environ raises several types for a malformed URL
        raise ImproperlyConfigured(f"{name}={url!r} is not a database URL: {exc}") from None
    if "." not in config.get("ENGINE", ""):
        raise ImproperlyConfigured(f"{name}={url!r}: unknown database scheme.")
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"{name}={url!r}: SQLite is not supported, nor any database but PostgreSQL "
            "(unset it to use the embedded PostgreSQL of `make run` and `make test`)."
        )
    options = config.get("OPTIONS", {})
    if not config.get("HOST") and "host" in options:
        # libpq's socket form (postgres://user@/name?host=/run/dir): Django wants the folder in HOST.
        config["HOST"] = options.pop("host")
    return config


def env_url(name: str, default: str | object = _NOT_SET, *, schemes: tuple[str, ...]) -> str:
    url = env_str(name, default)
    if url is None:
        return None
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in schemes:
        raise ImproperlyConfigured(f"{name}={url!r} must start with one of: {', '.join(s + '://' for s in schemes)}.")
    return url
