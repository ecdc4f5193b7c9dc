"""Who may change whose membership: the rules behind the admin's membership pages."""

from __future__ import annotations

from typing import Any

from platform_core.models import Membership, Organization, Role


def role_in(user: Any, org: Organization) -> Role | None:
    role = Membership.objects.filter(user=user, organization=org).values_list("role", flat=True).first()
    return Role(role) if role else None


def grantable_roles(actor: Any, org: Organization) -> list[Role]:
    """Owners grant any role; managers grant the roles below their own; nobody else grants any."""
    if actor.is_superuser:
        return list(Role)
    mine = role_in(actor, org)
    if mine == Role.OWNER:
        return list(Role)
    if mine == Role.MANAGER:
        return [role for role in Role if role.rank < mine.rank]
    return []


def may_change_membership(actor: Any, membership: Membership) -> bool:
    """Nobody changes or removes their own membership (an owner cannot lock the organisation out
    by demoting themselves); managers change only members ranked below them."""
    if actor.is_superuser:
        return True
    if membership.user_id == actor.pk:
        return False
    return Role(membership.role) in grantable_roles(actor, membership.organization)
