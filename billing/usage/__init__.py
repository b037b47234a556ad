"""Usage: ingestion exactly once, periods, rating (pure arithmetic), reads, and bursts handed to fraud."""
