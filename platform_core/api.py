"""The tenancy door for the REST API: every tenant endpoint derives from TenantAPIView."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.views import APIView

from platform_core.tenancy import Tenant, resolve_tenant


class TenantAPIView(APIView):
    """Resolves ``org_slug`` to ``self.tenant`` after authentication; non-members get a 404."""

    tenant: Tenant

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication and permissions: 401 first
        try:
            self.tenant = resolve_tenant(request.user, kwargs["org_slug"])
        except Http404:
            raise NotFound("No such organisation.") from None
