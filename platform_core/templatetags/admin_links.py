"""Links from the site's pages into the tenant-scoped admin."""

from __future__ import annotations

from django import template
from django.db import models
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.simple_tag
def admin_change_url(obj: models.Model) -> str:
    """The admin page of ``obj`` (empty when its model has none). Only put it before people who
    run the organisation: the admin answers anyone else with its managers-only page."""
    opts = obj._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""
