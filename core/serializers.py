"""Base of the API's input serializers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

# JSON types each field accepts, no others: DRF alone would take 0 for false, "12" for 12 and 12 for "12",
# which the schema does not allow and a caller probably did not mean.
_JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (  # type: ignore[type-arg]
    (serializers.BooleanField, (bool,), "Must be true or false."),
    (serializers.IntegerField, (int,), "Must be a whole number."),
    (serializers.CharField, (str,), "Must be a string."),
)


# Refuses fields it does not know, each named in `errors`: a misspelt optional field is a mistake the
# caller should hear about, not a default silently applied; and values of another JSON type than the
# field's. The schema says so (additionalProperties: false, config/schema.py). (A comment, not a
# docstring: the schema would show it on every input.)
class StrictInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            errors = {str(name): ["Unknown field."] for name in data if name not in self.fields}
            for name, field in self.fields.items():
                value = data.get(name)
                if value is None:
                    continue  # absent or null: the field's own rules decide
                for field_type, json_types, message in _JSON_TYPES:
                    wrong_type = not isinstance(value, json_types) or (
                        bool not in json_types and isinstance(value, bool)
                    )
                    if isinstance(field, field_type) and wrong_type:
                        errors[name] = [message]
            if errors:
                raise serializers.ValidationError(dict(sorted(errors.items())))
        return super().to_internal_value(data)
