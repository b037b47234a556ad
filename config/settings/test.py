"""The test suite: PostgreSQL always, tasks run eagerly, mail kept in Django's outbox."""

from config.env import env_db, env_url
from config.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "test-secret-key-not-secret"

# Never SQLite: the suite relies on PostgreSQL's locking and constraints. tests/conftest.py stops
# the run with one line naming DATABASE_URL when this server cannot be reached.
DATABASES = {"default": env_db("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tollbooth")}

# Argon2 stays first in production; tests hash thousands of passwords and need a cheap hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15", schemes=("redis", "rediss", "amqp"))
CELERY_TASK_ALWAYS_EAGER = True
