"""Fraud: rules, blocklist, signals, risk assessments, review and disputes; decides on facts its callers hand it."""
