"""Celery tasks for fraud: thin, by id; each calls one service.

The tasks that start from Stripe's objects or billing's usage (`fraud.assess_charge`, `fraud.assess_setup_failure`,
`fraud.scan_usage_bursts`) live in billing.tasks under the same names: billing reads, fraud decides.
"""

from celery import shared_task

from fraud.services import signup as signup_services


@shared_task(name="fraud.recheck_signup", acks_late=True, autoretry_for=(ConnectionError,), max_retries=3)
def recheck_signup(assessment_id: int) -> None:
    # acks_late is safe: a second run finds the decision already raised and changes nothing.
    signup_services.signup_recheck(assessment_id=assessment_id)
