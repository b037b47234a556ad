"""The scenario population against the default rules: the issue's targets."""

import pytest

from fraud.scenarios import population_generate, population_run


@pytest.mark.django_db
def test_default_rules_meet_the_targets_on_the_generated_population():
    report = population_run(population_generate(honest=400, fraud_per_kind=8, seed=11))
    assert report.fraud_caught >= 0.95
    assert report.honest_blocked <= 0.01
    assert report.honest_reviewed <= 0.05
    assert report.signup_p95_ms < 20
    assert {row["kind"] for row in report.rows} >= {"honest", "trial_farm_ip", "card_testing", "dispute"}
