"""The ledger: rate closed periods, push entries to Stripe, settle them when paid."""
