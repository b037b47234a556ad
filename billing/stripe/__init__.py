"""The Stripe seam: the configured client, object re-reads with their account, customers, catalog sync, webhook
endpoints and the dj-stripe receivers."""
