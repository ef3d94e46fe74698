"""The global kill switch row always exists (inactive), and the spec's limits are active."""

from django.db import migrations


def create_rows(apps, schema_editor):
    KillSwitchState = apps.get_model("risk", "KillSwitchState")
    RiskLimitSet = apps.get_model("risk", "RiskLimitSet")
    KillSwitchState.objects.get_or_create(scope="global", defaults={"active": False})
    if not RiskLimitSet.objects.filter(is_active=True).exists():
        RiskLimitSet.objects.create(is_active=True)  # the field defaults are the spec's limits


class Migration(migrations.Migration):
    dependencies = [("risk", "0001_initial")]

    operations = [migrations.RunPython(create_rows, migrations.RunPython.noop)]
