import django.db.models.deletion
from django.db import migrations, models


def reviews_to_versions(apps, schema_editor):
    """A review now belongs to a version: the one its approved request named (the current
    version when the request named none). A file-loaded strategy remembers the newest config
    loaded from its file, so the next start-up does not take API edits for file changes."""
    Strategy = apps.get_model("quant", "Strategy")
    ApprovalRequest = apps.get_model("quant", "ApprovalRequest")
    StrategyVersion = apps.get_model("quant", "StrategyVersion")
    for strategy in Strategy.objects.all():
        fields = []
        if strategy.reviewed_at is not None:
            review = (
                ApprovalRequest.objects.filter(
                    strategy=strategy, kind="strategy_review", status="approved"
                )
                .order_by("-decided_at", "-id")
                .first()
            )
            strategy.reviewed_version_id = (
                review.strategy_version_id
                if review is not None and review.strategy_version_id
                else strategy.current_version_id
            )
            fields.append("reviewed_version")
        newest_file = (
            StrategyVersion.objects.filter(strategy=strategy, source="file")
            .order_by("-number")
            .values_list("content_hash", flat=True)
            .first()
        )
        if newest_file:
            strategy.source_hash = newest_file
            fields.append("source_hash")
        if fields:
            strategy.save(update_fields=fields)


class Migration(migrations.Migration):

    dependencies = [
        ('quant', '0003_featureset_featuresetversion_and_more'),
    ]

    operations = [
        migrations.AddField(
            model_name='modechange',
            name='strategy_version',
            field=models.ForeignKey(blank=True, help_text="The strategy's version when its mode changed", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='quant.strategyversion'),
        ),
        migrations.AddField(
            model_name='strategy',
            name='reviewed_version',
            field=models.ForeignKey(blank=True, help_text='The version whose review was approved (gate 1); a newer version is unreviewed', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='quant.strategyversion'),
        ),
        migrations.AddField(
            model_name='strategy',
            name='source_hash',
            field=models.CharField(blank=True, help_text='Content hash of the config its YAML file held when last loaded', max_length=64),
        ),
        migrations.AlterField(
            model_name='strategy',
            name='reviewed_at',
            field=models.DateTimeField(blank=True, help_text='When the review of the reviewed version was approved', null=True),
        ),
        migrations.RunPython(reviews_to_versions, migrations.RunPython.noop),
    ]
