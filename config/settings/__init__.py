"""Settings split by concern: base, one module per integration, and one per environment."""
