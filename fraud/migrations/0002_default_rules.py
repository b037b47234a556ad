"""Seed the default rules (one per kind, with the defaults of fraud/rules.py) and the "fraud" staff group."""

from django.db import migrations

# Frozen here on purpose: a migration must not change when fraud/rules.py is tuned later.
DEFAULT_RULES = [
    # kind, stage, parameters, score
    ("honeypot", "signup", {}, 100),
    ("form_too_fast", "signup", {"min_seconds": 3}, 50),
    ("disposable_email", "signup", {}, 60),
    ("blocklisted", "signup", {}, 100),
    ("blocked_device", "signup", {"window_minutes": 43200}, 100),
    ("velocity_ip", "signup", {"threshold": 3, "window_minutes": 60}, 50),
    ("velocity_subnet", "signup", {"threshold": 6, "window_minutes": 60}, 30),
    ("velocity_device", "signup", {"threshold": 2, "window_minutes": 1440}, 60),
    ("email_domain_burst", "signup", {"threshold": 4, "window_minutes": 1440}, 50),
    ("card_testing", "payment", {"threshold": 3, "window_minutes": 10, "cooloff_minutes": 60}, 60),
    ("fingerprint_reuse", "payment", {"threshold": 1}, 60),
    ("country_mismatch", "payment", {}, 30),
    ("prepaid_on_trial", "payment", {}, 30),
    ("radar_elevated", "payment", {}, 40),
    ("radar_highest", "payment", {}, 100),
    ("payment_blocklisted", "payment", {}, 100),
    ("early_fraud_warning", "payment", {}, 100),
    ("usage_burst", "feature", {"multiple": 10}, 50),
    ("dispute", "chargeback", {}, 100),
]


def seed(apps, schema_editor):
    Rule = apps.get_model("fraud", "Rule")
    Group = apps.get_model("auth", "Group")
    for kind, stage, parameters, score in DEFAULT_RULES:
        Rule.objects.get_or_create(kind=kind, defaults={"stage": stage, "parameters": parameters, "score": score})
    Group.objects.get_or_create(name="fraud")


def unseed(apps, schema_editor):
    apps.get_model("fraud", "Rule").objects.filter(kind__in=[rule[0] for rule in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("fraud", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(seed, unseed)]
