"""The one tenancy door.

Every tenant-owned model declares ``tenant_path``, the ORM path from the model to its
``Organization`` primary key (``"organization"``, ``"project__organization"``, ``"pk"`` for the
organisation itself), and uses ``TenantQuerySet`` as its manager. Requests resolve their tenant with
``resolve_tenant`` (views through ``member_required``, the API through ``TenantAPIView``, websocket
consumers directly); every lookup then goes through ``Model.objects.for_org(tenant.org)`` or
``get_for_org_or_404``. An object of another organisation is a 404, never a 403.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse

if TYPE_CHECKING:
    from platform_core.models import Membership, Organization, Role

M = TypeVar("M", bound=models.Model)


class TenantQuerySet(models.QuerySet):
    def _tenant_path(self) -> str:
        path = getattr(self.model, "tenant_path", None)
        if not path:
            raise ImproperlyConfigured(f"{self.model.__name__} has no tenant_path.")
        return path

    def for_org(self, org: Organization) -> TenantQuerySet:
        return self.filter(**{self._tenant_path(): org.pk})

    def for_orgs(self, orgs: models.QuerySet) -> TenantQuerySet:
        return self.filter(**{f"{self._tenant_path()}__in": orgs.values("pk")})


@dataclass(frozen=True)
class Tenant:
    """The organisation a request acts in, and the requesting member's role there."""

    org: Organization
    membership: Membership

    @property
    def role(self) -> Role:
        from platform_core.models import Role

        return Role(self.membership.role)

    def has_role(self, at_least: Role) -> bool:
        return self.role.at_least(at_least)

    @property
    def can_manage(self) -> bool:
        from platform_core.models import Role

        return self.role in Role.managing()


def resolve_tenant(user: Any, org_slug: str) -> Tenant:
    """The member's tenant for ``org_slug``; Http404 when the organisation is missing or not theirs."""
    from platform_core.models import Membership

    if user is None or not user.is_authenticated or not user.is_active:
        raise Http404("No such organisation.")
    membership = (
        Membership.objects.select_related("organization").filter(user=user, organization__slug=org_slug).first()
    )
    if membership is None:
        raise Http404("No such organisation.")
    membership.user = user  # the one it was looked up by: no second query for it
    return Tenant(org=membership.organization, membership=membership)


def get_for_org_or_404(queryset: models.QuerySet[M] | type[M], org: Organization, **lookup: Any) -> M:
    """Fetch one object of ``org``; missing and foreign objects are the same 404."""
    if isinstance(queryset, type):
        queryset = queryset._default_manager.all()
    try:
        return queryset.for_org(org).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No such {queryset.model._meta.verbose_name}.") from None


def member_required(view: Callable | None = None, *, role: Role | None = None) -> Callable:
    """Decorate a view whose URL carries ``org_slug``.

    Anonymous users are sent to the login page; users who are not members get a 404; members
    below ``role`` get a 403 (they already know the organisation exists). The view receives the
    request with ``request.tenant`` set and without the ``org_slug`` argument.
    """

    def decorator(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(request: HttpRequest, *args: Any, org_slug: str, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            tenant = resolve_tenant(request.user, org_slug)
            if role is not None and not tenant.has_role(role):
                raise PermissionDenied("Your role in this organisation does not allow this.")
            request.tenant = tenant
            return func(request, *args, **kwargs)

        return wrapper

    return decorator(view) if view is not None else decorator
