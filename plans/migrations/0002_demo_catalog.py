"""Seed the demo catalog (see plans/demo_catalog.py)."""

from django.db import migrations

from plans.demo_catalog import catalog_seed_demo


def seed(apps, schema_editor):
    catalog_seed_demo(apps.get_model("plans", "Plan"), apps.get_model("plans", "PlanPrice"),
                      apps.get_model("plans", "Entitlement"))


class Migration(migrations.Migration):
    dependencies = [("plans", "0001_catalog")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
