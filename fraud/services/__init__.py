"""Fraud's services, one module per stage; the names other apps call are re-exported here.

Callers hand fraud the facts they read (a card attempt, a dispute and its charge, usage): fraud imports only
accounts and plans.
"""

from fraud.services.feature import BURST_WINDOW, usage_burst_check, usage_burst_due
from fraud.services.payment import ChargeFacts, checkout_assess, payment_hard_decline, payment_record_attempt
from fraud.services.review import assessment_approve, assessment_block, is_fraud_staff
from fraud.services.signup import SignupVerdict, assess_signup, signup_link_account, signup_link_user
from fraud.services.stripe_events import (
    chargeback_record,
    dispute_submit_evidence,
    early_fraud_warning_record,
    evidence_sender_register,
    invoice_paid_trust,
)

__all__ = [
    "BURST_WINDOW",
    "ChargeFacts",
    "SignupVerdict",
    "assess_signup",
    "assessment_approve",
    "assessment_block",
    "chargeback_record",
    "checkout_assess",
    "dispute_submit_evidence",
    "early_fraud_warning_record",
    "evidence_sender_register",
    "invoice_paid_trust",
    "is_fraud_staff",
    "payment_hard_decline",
    "payment_record_attempt",
    "signup_link_account",
    "signup_link_user",
    "usage_burst_check",
    "usage_burst_due",
]
