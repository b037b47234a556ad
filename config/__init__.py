"""Project configuration: settings, urls, the Celery app and the development server."""

from config.celery import app as celery_app

__all__ = ["celery_app"]
