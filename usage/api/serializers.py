from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers


class CostEstimateInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    model = serializers.CharField(max_length=100)
    input_tokens = serializers.IntegerField(min_value=0, max_value=10_000_000)
    output_tokens = serializers.IntegerField(min_value=0, max_value=10_000_000)
    cache_creation_input_tokens = serializers.IntegerField(
        min_value=0, max_value=10_000_000, default=0, help_text="Priced as 5-minute cache writes."
    )
    cache_read_input_tokens = serializers.IntegerField(min_value=0, max_value=10_000_000, default=0)
    batch = serializers.BooleanField(default=False)


class PriceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    model = serializers.CharField()
    effective_from = serializers.DateTimeField()
    input = serializers.CharField()
    cache_write_5m = serializers.CharField()
    cache_write_1h = serializers.CharField()
    cache_read = serializers.CharField()
    output = serializers.CharField()
    batch_multiplier = serializers.CharField()
    long_context_threshold = serializers.IntegerField(allow_null=True)
    per = serializers.CharField()


class CostEstimateOutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    cost_usd = serializers.CharField(help_text="Exact decimal string, USD.")
    cost_per_1000_usd = serializers.CharField()
    price = PriceSerializer()


class UsageQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    from_ = serializers.DateField(
        required=False, allow_null=True, help_text="First day (UTC), default: the first of this month."
    )
    to = serializers.DateField(required=False, allow_null=True, help_text="Last day (UTC), inclusive; default: today.")
    group_by = serializers.ChoiceField(choices=["day", "prompt", "model", "feature"], default="day")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        today = timezone.now().date()
        attrs["from_"] = attrs.get("from_") or today.replace(day=1)
        attrs["to"] = attrs.get("to") or today
        if attrs["from_"] > attrs["to"]:
            raise serializers.ValidationError({"from": "must not be after `to`"})
        if (attrs["to"] - attrs["from_"]).days > 366:
            raise serializers.ValidationError({"from": "a period spans at most 366 days"})
        return attrs


class UsageGroupSerializer(serializers.Serializer):  # type: ignore[type-arg]
    key = serializers.CharField(help_text="The day, prompt slug, model or feature.")
    calls = serializers.IntegerField()
    failed = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField()
    cache_read_input_tokens = serializers.IntegerField()
    cost_usd = serializers.CharField()


# Declared inline: the response has a field named `from`, which a class attribute cannot be.
UsageOutputSerializer = inline_serializer(
    name="Usage",
    fields={
        "from": serializers.DateField(),
        "to": serializers.DateField(),
        "group_by": serializers.CharField(),
        "groups": UsageGroupSerializer(many=True),
        "total": serializers.DictField(),
    },
)
