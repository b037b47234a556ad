"""Accounts: users, merchant accounts (our tenants), memberships, invitations, API keys and the audit log."""
