"""Plans: the catalog of plans, prices (cents + currency) and entitlements; imports no other app."""
