from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self):
        from billing import receivers  # noqa: F401  (connect its signal receivers)
        from billing.stripe import fraud_events, webhooks  # noqa: F401  (register the Stripe event handlers)
        from billing.stripe.mirror import mirror_link_invoice_subscriptions
        from fraud.services import evidence_sender_register

        # Fraud's admin submits dispute evidence; the Stripe call is billing's.
        evidence_sender_register(fraud_events.dispute_evidence_send)
        # dj-stripe 2.11 links an invoice to its subscription from a key Stripe's current API no longer sends.
        mirror_link_invoice_subscriptions()
