"""The admin home page's template tag (registered as the `home` library in TEMPLATES): hands the admin
index the signed-in person's sections (config.home). Django's own index view and URL stay as they are."""

from __future__ import annotations

from typing import Any

from django import template

from config.home import home_sections as sections_for

register = template.Library()


@register.simple_tag(takes_context=True)
def home_sections(context: dict[str, Any]) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    return sections_for(user=user) if user is not None else {}
