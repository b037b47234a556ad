"""`make run` on a machine with nothing running: embedded PostgreSQL, a folder broker, the local Stripe sandbox.

Each embedded part gives way to the real one when its variable is set (DATABASE_URL, CELERY_BROKER_URL,
STRIPE_TEST_SECRET_KEY with STRIPE_API_HOST unset). SQLite is not supported: usage ingestion and the
rating claim rely on PostgreSQL statements (unnest, FOR UPDATE SKIP LOCKED).
"""

from config.embedded_db import embedded_url
from config.env import env_bool, env_db, env_int, env_str, env_url
from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR

DEBUG = env_bool("DJANGO_DEBUG", True)
TOLLBOOTH_WEBHOOKS_ALLOW_PRIVATE = env_bool("TOLLBOOTH_WEBHOOKS_ALLOW_PRIVATE", True)  # local receivers
# Emails on the console as one block each (to, subject, links): config/mail.py.
EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "config.mail.ConsoleSummaryBackend")
VAR_DIR.mkdir(exist_ok=True)  # the embedded database and the folder broker live here; a fresh clone has no var/

# `make run` starts the embedded server (config/devserver.py) and passes its URL on; a `manage.py`
# command run by hand beside it finds the same server through its data folder.
DATABASES = {"default": env_db("DATABASE_URL", embedded_url(VAR_DIR / "postgres", "tollbooth"))}

# kombu's folder transport needs no hostname but warns without one.
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", "filesystem://localhost/", schemes=("filesystem", "redis", "rediss", "amqp")
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's folder transport: no server needed. Its options only make sense for this transport.
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # broadcast (pidbox) messages; default is ./control
        "store_processed": False,
    }
    for _folder in ("out", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
CELERY_WORKER_REDIRECT_STDOUTS = False  # emails print as they are, not as WARNING log lines
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

STRIPE_API_HOST = env_str("STRIPE_API_HOST", f"http://127.0.0.1:{env_int('TOLLBOOTH_SANDBOX_PORT', 12111, minimum=1)}")
STRIPE_TEST_SECRET_KEY = env_str("STRIPE_TEST_SECRET_KEY", "sk_test_tollboothsandbox0000000000000000")
