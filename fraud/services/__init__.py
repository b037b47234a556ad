"""Fraud's services, one module per stage; the names other apps call are re-exported here."""

from fraud.services.payment import ChargeFacts, checkout_assess, payment_record_attempt
from fraud.services.review import assessment_approve, assessment_block, is_fraud_staff
from fraud.services.signup import SignupVerdict, assess_signup, signup_link_account, signup_link_user

__all__ = [
    "ChargeFacts",
    "SignupVerdict",
    "assess_signup",
    "assessment_approve",
    "assessment_block",
    "checkout_assess",
    "is_fraud_staff",
    "payment_record_attempt",
    "signup_link_account",
    "signup_link_user",
]
