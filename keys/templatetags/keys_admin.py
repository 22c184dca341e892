"""The admin banner about provider keys due for rotation."""

from __future__ import annotations

from typing import Any

from django import template

from keys.selectors import keys_needing_rotation, rotation_state

register = template.Library()


@register.inclusion_tag("admin/keys/rotation_banner.html", takes_context=True)
def rotation_banner(context: dict[str, Any]) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("keys.view_providerkey"):
        return {"keys": []}
    return {"keys": [(key, rotation_state(key)) for key in keys_needing_rotation()]}
