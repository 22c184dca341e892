from __future__ import annotations

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from core.serializers import StrictInputSerializer
from gateway.batches import MAX_ITEMS
from prompts.models import Release

# Declared inline: a serializer class cannot have a field named `required` (it shadows Field.required).
VariableSerializer = inline_serializer(
    name="Variable",
    fields={
        "name": serializers.CharField(),
        "type": serializers.CharField(),
        "required": serializers.BooleanField(),
        "max_length": serializers.IntegerField(allow_null=True),
        "sensitive": serializers.BooleanField(),
        "choices": serializers.ListField(child=serializers.CharField(), allow_null=True),
    },
    many=True,
)


class PromptOutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A prompt as a client sees it: what is live in its environment and what the run needs."""

    slug = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField(help_text="The version number live in this environment.")
    model = serializers.CharField()
    variables = VariableSerializer

    def to_representation(self, instance: Release) -> dict[str, Any]:
        version = instance.version
        return {
            "slug": instance.prompt.slug,
            "name": instance.prompt.name,
            "version": version.number,
            "model": version.model,
            "variables": [
                {
                    "name": variable["name"],
                    "type": variable.get("type", "string"),
                    "required": variable.get("required", True),
                    "max_length": variable.get("max_length"),
                    "sensitive": variable.get("sensitive", False),
                    "choices": variable.get("choices"),
                }
                for variable in version.variables
            ],
        }


class RunMetadataSerializer(StrictInputSerializer):
    feature = serializers.CharField(max_length=100, required=False, allow_blank=True)
    user_tier = serializers.CharField(max_length=50, required=False, allow_blank=True)
    end_user = serializers.CharField(max_length=200, required=False, allow_blank=True)


class RunInputSerializer(StrictInputSerializer):
    variables = serializers.DictField(help_text="Values for the prompt's variables.")
    stream = serializers.BooleanField(default=False)
    metadata = RunMetadataSerializer(required=False, default=dict)


class JobInputSerializer(StrictInputSerializer):
    variables = serializers.DictField(help_text="Values for the prompt's variables.")
    metadata = RunMetadataSerializer(required=False, default=dict)
    callback_url = serializers.URLField(
        max_length=2000, required=False, default="", help_text="https URL that receives the final JSON, signed."
    )


class BatchItemInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    custom_id = serializers.CharField(max_length=64)
    variables = serializers.DictField()


class BatchInputSerializer(StrictInputSerializer):
    items = serializers.ListField(
        child=serializers.JSONField(), min_length=1, max_length=MAX_ITEMS, help_text="`{custom_id, variables}` objects."
    )
    metadata = RunMetadataSerializer(required=False, default=dict)
    callback_url = serializers.URLField(max_length=2000, required=False, default="")
