"""Celery tasks for fraud: thin, by id; each calls one service."""

from celery import shared_task

from fraud.services import signup as signup_services
from fraud.services import stripe_events
from fraud.services.feature import usage_bursts_scan


@shared_task(name="fraud.recheck_signup", acks_late=True, autoretry_for=(ConnectionError,), max_retries=3)
def recheck_signup(assessment_id: int) -> None:
    # acks_late is safe: a second run finds the decision already raised and changes nothing.
    signup_services.signup_recheck(assessment_id=assessment_id)


@shared_task(name="fraud.assess_charge", autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def assess_charge(charge_id: str) -> None:
    stripe_events.charge_assess(charge_id=charge_id)


@shared_task(name="fraud.assess_setup_failure", autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def assess_setup_failure(setup_intent_id: str) -> None:
    stripe_events.setup_failure_assess(setup_intent_id=setup_intent_id)


@shared_task(name="fraud.scan_usage_bursts")
def scan_usage_bursts() -> None:
    usage_bursts_scan()
