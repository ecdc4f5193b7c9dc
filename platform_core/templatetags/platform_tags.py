"""Template helpers shared by every app's pages."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from platform_core.markdown import render_markdown

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """Guideline notes as sanitised HTML."""
    return mark_safe(render_markdown(text))  # noqa: S308 - sanitised by nh3 in render_markdown


@register.filter
def percent(part: int | None, whole: int | None) -> int:
    if not whole:
        return 0
    return min(100, round(100 * (part or 0) / whole))
