"""Celery tasks for fraud: thin, by id; each calls one service.

Fraud's checks that start from Stripe's events (charges, failed card setups) run in billing's event handlers;
the one that starts from billing's usage (`fraud.scan_usage_bursts`) lives in billing.tasks under that name:
billing reads, fraud decides.
"""

from celery import shared_task

from fraud.services import signup as signup_services


@shared_task(name="fraud.recheck_signup", acks_late=True, autoretry_for=(ConnectionError,), max_retries=3)
def recheck_signup(assessment_id: int) -> None:
    # acks_late is safe: a second run finds the decision already raised and changes nothing.
    signup_services.signup_recheck(assessment_id=assessment_id)
