"""Formerly seeded the demo catalog into every database, production included; now a no-op.

The demo catalog is the demo seeder's job (`manage.py seed_demo`, `plans/demo_catalog.py`) and the tests'
`catalog` fixture's. The file and its name stay so that databases that applied it keep a consistent
migration history, and later migrations keep depending on it. Databases that applied the old version
keep the rows it wrote; nothing here removes them.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("plans", "0001_catalog")]
    operations = []
