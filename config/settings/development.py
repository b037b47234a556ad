"""`make run` on a machine with nothing running: SQLite, a folder broker, the local Stripe sandbox.

Each embedded part gives way to the real one when its variable is set (DATABASE_URL, CELERY_BROKER_URL,
STRIPE_TEST_SECRET_KEY with STRIPE_API_HOST unset).
"""

from config.env import env_bool, env_db, env_str, env_url
from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR

DEBUG = env_bool("DJANGO_DEBUG", True)
VAR_DIR.mkdir(exist_ok=True)  # SQLite and the folder broker live here; a fresh clone has no var/ yet

DATABASES = {"default": env_db("DATABASE_URL", f"sqlite:///{VAR_DIR / 'tollbooth.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Webhook deliveries, the worker and the web process write concurrently: take the write lock at
    # BEGIN and wait for it, instead of failing with "database is locked" on a lock upgrade.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}

CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", "filesystem://", schemes=("filesystem", "redis", "rediss", "amqp", "sqla+sqlite")
)
if CELERY_BROKER_URL == "filesystem://":
    # kombu's folder transport: no server needed. Its options only make sense for this transport.
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # broadcast (pidbox) messages; default is ./control
        "store_processed": False,
    }
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

STRIPE_API_HOST = env_str("STRIPE_API_HOST", "http://127.0.0.1:12111")
STRIPE_TEST_SECRET_KEY = env_str("STRIPE_TEST_SECRET_KEY", "sk_test_tollboothsandbox0000000000000000")
