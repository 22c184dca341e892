from __future__ import annotations

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
