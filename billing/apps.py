from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self):
        from billing import fraud_feed, receivers, webhooks  # noqa: F401  (connect their signal receivers)
        from fraud.services import evidence_sender_register

        # Fraud's admin submits dispute evidence; the Stripe call is billing's.
        evidence_sender_register(fraud_feed.dispute_evidence_send)
