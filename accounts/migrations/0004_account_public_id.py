"""Account.public_id: a UUID naming the account outside this database (Stripe idempotency keys, customer metadata).

Three steps, as Django documents for a unique field on existing rows: add it nullable, give each row its own UUID,
then make it unique and required.
"""

import uuid

from django.db import migrations, models


def fill_public_ids(apps, schema_editor):
    Account = apps.get_model("accounts", "Account")
    for account in Account.objects.filter(public_id__isnull=True).only("pk").iterator():
        Account.objects.filter(pk=account.pk).update(public_id=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_risk_hold"),
    ]

    operations = [
        migrations.AddField(
            model_name="account",
            name="public_id",
            field=models.UUIDField(null=True, editable=False),
        ),
        migrations.RunPython(fill_public_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="account",
            name="public_id",
            field=models.UUIDField(default=uuid.uuid4, unique=True, editable=False),
        ),
    ]
