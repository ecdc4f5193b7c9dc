"""The tenancy door for the REST API: every tenant endpoint derives from TenantAPIView.

It also maps the services' Django exceptions to API answers in one place: ``ValidationError`` is a
400 naming the fields (``{"field": ["message"]}``) or, for an error about the request as a whole,
``{"detail": "message", "code": "..."}``; ``PermissionDenied`` is a 403 and ``Http404`` a 404 (DRF's
own handler does those two).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404
from django.http.multipartparser import TooManyFilesSent
from django.views.generic import TemplateView
from rest_framework import exceptions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from platform_core.models import Role
from platform_core.tenancy import Tenant, resolve_tenant


def validation_detail(exc: DjangoValidationError) -> dict[str, Any]:
    """The body of a 400 for a service's ValidationError."""
    if hasattr(exc, "error_dict"):
        body: dict[str, Any] = {}
        for field, messages in exc.message_dict.items():
            if field == NON_FIELD_ERRORS:
                body["detail"] = " ".join(messages)
            else:
                body[field] = messages
        return body
    body = {"detail": " ".join(exc.messages)}
    code = getattr(exc, "code", None)
    if code:
        body["code"] = code
    return body


def max_files_per_request() -> int:
    return settings.DATA_UPLOAD_MAX_NUMBER_FILES or 100


class ErrorOutput(serializers.Serializer):
    """What a refused request answers: ``detail`` for the whole request, or one list of messages
    per field that was refused."""

    detail = serializers.CharField()
    code = serializers.CharField(required=False)


class TenantAPIView(APIView):
    """Resolves ``org_slug`` to ``self.tenant`` after authentication; non-members get a 404."""

    tenant: Tenant
    # Read by drf-spectacular to document list answers as pages, and by ``paginated`` below.
    pagination_class = PageNumberPagination

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication and permissions: 401 first
        try:
            self.tenant = resolve_tenant(request.user, kwargs["org_slug"])
        except Http404:
            raise exceptions.NotFound("No such organisation.") from None

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, DjangoValidationError):
            exc = exceptions.ValidationError(validation_detail(exc))
        elif isinstance(exc, TooManyFilesSent):
            # Django refuses the request while parsing it; say so in JSON, like every other refusal.
            exc = exceptions.ValidationError(
                {"detail": f"At most {max_files_per_request()} files per request.", "code": "too_many_files"}
            )
        return super().handle_exception(exc)

    def require_role(self, role: Role) -> None:
        if not self.tenant.has_role(role):
            raise PermissionDenied("Your role in this organisation does not allow this.")

    def paginated(self, queryset: QuerySet | list, output: type[serializers.Serializer]) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(output(page, many=True, context=self.get_serializer_context()).data)

    def get_serializer_context(self) -> dict[str, Any]:
        return {"request": self.request, "tenant": self.tenant, "view": self}

    def parse(self, input_serializer: type[serializers.Serializer], *, partial: bool = False) -> dict[str, Any]:
        """The request body checked against ``input_serializer``; a 400 naming the bad fields."""
        serializer = input_serializer(data=self.request.data, partial=partial, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class ApiDocsView(TemplateView):
    """Swagger UI for the schema at /api/schema/, from self-hosted files (static/vendor/swagger-ui):
    the pages' CSP allows scripts and styles from this site only."""

    template_name = "platform_core/api_docs.html"
