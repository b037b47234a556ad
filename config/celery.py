"""The Celery app. Tasks are discovered in each app's tasks.py; settings come from CELERY_* in Django's."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.development")

app = Celery("tollbooth")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
