from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import DatabaseError
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from core.serializers import StrictInputSerializer
from usage.selectors import priced_models

# The longest period one usage query reads; a longer one is shortened to the days ending at `to`.
USAGE_MAX_DAYS = 366


class PricedModelField(serializers.CharField):
    """A model id or alias; the price book decides which (400 `model_not_priced` otherwise)."""


class PricedModelFieldSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    """Publishes the models priced now as the field's enum, so the schema says which requests are valid.
    The schema is built per request, so it follows the price book."""

    target_class = "usage.api.serializers.PricedModelField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = {"type": "string", "description": "A model with a price in force now."}
        try:
            return {**schema, "enum": priced_models()}
        except DatabaseError:  # `manage.py check` builds the schema too, possibly before any migration
            return schema


class CostEstimateInputSerializer(StrictInputSerializer):
    model = PricedModelField(max_length=100)
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
    from_ = serializers.DateField(required=False, allow_null=True)
    to = serializers.DateField(required=False, allow_null=True)
    group_by = serializers.ChoiceField(choices=["day", "prompt", "model", "feature"], default="day")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Every pair of dates is answered, and the answer's `from` and `to` name the period it covers: a
        # `from` after `to` is an empty period; a longer one than USAGE_MAX_DAYS is shortened to the days
        # ending at `to` (it bounds what one query reads).
        today = timezone.now().date()
        attrs["to"] = attrs.get("to") or today
        attrs["from_"] = max(
            attrs.get("from_") or today.replace(day=1), attrs["to"] - timedelta(days=USAGE_MAX_DAYS - 1)
        )
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
