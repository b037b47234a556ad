"""The Stripe seam: the configured client, object re-reads with their account, customers, catalog sync, webhook
endpoints, and Stripe's events in (the intake, their processing, the handlers)."""
