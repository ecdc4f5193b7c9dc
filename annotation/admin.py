from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from annotation.models import Label, MediaItem, Project
from platform_core.admin_tenancy import TenantModelAdmin, TenantTabularInline


class LabelInline(TenantTabularInline):
    model = Label
    extra = 0
    fields = ["name", "color", "kind", "order"]


@admin.register(Project)
class ProjectAdmin(TenantModelAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_by", "created_at"]
    inlines = [LabelInline]

    def save_model(self, request: HttpRequest, obj: Project, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Label)
class LabelAdmin(TenantModelAdmin):
    list_display = ["name", "project", "kind", "swatch", "order"]
    list_filter = ["kind", "project"]
    search_fields = ["name", "project__name"]
    autocomplete_fields = ["project"]

    @admin.display(description="colour")
    def swatch(self, obj: Label) -> str:
        # An SVG fill, not a style attribute: the admin's pages carry the same strict CSP.
        return format_html(
            '<svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">'
            '<rect width="14" height="14" rx="3" fill="{}"/></svg> {}',
            obj.color,
            obj.color,
        )


@admin.register(MediaItem)
class MediaItemAdmin(TenantModelAdmin):
    list_display = ["original_name", "project", "kind", "width", "height", "created_at"]
    list_filter = ["kind", "project"]
    search_fields = ["original_name", "project__name"]
    fields = [
        "project",
        "kind",
        "original_name",
        "content_type",
        "width",
        "height",
        "size_bytes",
        "file",
        "uploaded_by",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Files enter through the upload service, which sniffs, limits and normalises them.
        return False
