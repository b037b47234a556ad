"""The test suite: PostgreSQL always, tasks run eagerly, mail kept in Django's outbox."""

from config.embedded_db import EmbeddedDatabaseError, embedded_for_process
from config.env import env_db, env_str, env_url
from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR

DEBUG = False
TOLLBOOTH_WEBHOOKS_ALLOW_PRIVATE = True  # the tests' receivers listen on 127.0.0.1
SECRET_KEY = "test-secret-key-not-secret"

# PostgreSQL always: the suite relies on its locking and constraints. With DATABASE_URL unset the
# session starts the embedded server (its own data folder, stopped at the end); tests/conftest.py
# stops the run with one line naming DATABASE_URL when the server cannot be reached.
if not env_str("DATABASE_URL", ""):
    try:
        embedded_for_process(VAR_DIR / "test-postgres", database="tollbooth")
    except EmbeddedDatabaseError as exc:
        raise SystemExit(f"make test: {exc}") from None
DATABASES = {"default": env_db("DATABASE_URL")}

# Argon2 stays first in production; tests hash thousands of passwords and need a cheap hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15", schemes=("redis", "rediss", "amqp"))
CELERY_TASK_ALWAYS_EAGER = True
