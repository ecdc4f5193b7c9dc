"""Reads on organisations and memberships."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from platform_core.models import Membership, Organization, Role


def memberships_of(user: Any) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organization").order_by("organization__name")


def organizations_managed_by(user: Any) -> QuerySet[Organization]:
    """Organisations the user may run from Django admin (owner or manager there)."""
    return Organization.objects.filter(memberships__user=user, memberships__role__in=Role.managing()).distinct()
