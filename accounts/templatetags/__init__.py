"""Template tags of accounts: the entitlement gate `{% has_feature %}`."""
