"""Crowd batches, workers, gold items and qualification tests in the tenant-scoped admin, where a
manager sets up a batch; assignments, MTurk HITs and aggregated results are shown read-only (the
worker flow, the MTurk sync and aggregation write them), and so is the review audit, which nobody
deletes. Every object and choice is scoped by ``TenantModelAdmin``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join

from crowd.models import (
    CrowdAssignment,
    CrowdBatch,
    CrowdHit,
    CrowdResult,
    CrowdWorker,
    GoldItem,
    QualificationTest,
    ReviewAction,
)
from crowd.selectors import batch_entry_urls
from platform_core.admin_tenancy import TenantModelAdmin


@admin.register(CrowdBatch)
class CrowdBatchAdmin(TenantModelAdmin):
    list_display = ["name", "project", "provider", "state", "assignments_per_item", "gold_rate", "created_at"]
    list_filter = ["project", "provider", "state"]
    list_select_related = ["project"]
    search_fields = ["name", "project__name"]
    autocomplete_fields = ["project"]
    readonly_fields = ["entry_urls", "created_by", "created_at"]

    @admin.display(description="worker entry URLs")
    def entry_urls(self, obj: CrowdBatch) -> str:
        if obj.pk is None:
            return "Shown once the batch is saved."
        return format_html_join("", "<div>{} <code>{}</code></div>", batch_entry_urls(obj)) or "—"

    def save_model(self, request: HttpRequest, obj: CrowdBatch, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(CrowdWorker)
class CrowdWorkerAdmin(TenantModelAdmin):
    list_display = ["external_id", "provider", "organization", "blocked", "block_reason", "created_at"]
    list_filter = ["provider", "blocked"]
    search_fields = ["external_id"]
    readonly_fields = ["created_at"]


@admin.register(GoldItem)
class GoldItemAdmin(TenantModelAdmin):
    list_display = ["media", "annotation", "question", "answer", "label", "purpose", "project"]
    list_filter = ["project", "purpose"]
    list_select_related = ["media", "annotation", "question", "label", "project"]
    autocomplete_fields = ["project", "media"]


@admin.register(QualificationTest)
class QualificationTestAdmin(TenantModelAdmin):
    list_display = [
        "project",
        "kind",
        "question",
        "label",
        "item_count",
        "pass_mark",
        "iou_threshold",
        "retake_delay_hours",
    ]
    list_select_related = ["project", "question", "label"]
    autocomplete_fields = ["project"]


@admin.register(CrowdAssignment)
class CrowdAssignmentAdmin(TenantModelAdmin):
    list_display = ["batch", "worker", "media", "state", "answer", "is_gold", "gold_correct", "submitted_at"]
    list_filter = ["batch", "state", "is_gold"]
    list_select_related = ["batch", "worker", "media"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The nonce is half of a worker's credential: not shown, even read-only.
        return [field.name for field in self.model._meta.fields if field.name != "token_nonce"]

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["token_nonce"]


class ReadOnlyAdmin(TenantModelAdmin):
    """Rows written by the platform itself: shown, never added or changed here."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CrowdHit)
class CrowdHitAdmin(ReadOnlyAdmin):
    list_display = ["hit_id", "batch", "max_assignments", "expires_at", "created_at", "synced_at"]
    list_filter = ["batch"]
    list_select_related = ["batch"]
    search_fields = ["hit_id"]


@admin.register(CrowdResult)
class CrowdResultAdmin(ReadOnlyAdmin):
    list_display = ["batch", "media", "annotation", "method", "answer", "agreement", "needs_review", "reviewed_by"]
    list_filter = ["batch", "method", "needs_review"]
    list_select_related = ["batch", "media", "annotation__label", "annotation__media", "reviewed_by"]


@admin.register(ReviewAction)
class ReviewActionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "actor", "worker", "assignment", "task", "amount_cents", "delivery"]
    list_filter = ["kind", "delivery"]
    list_select_related = ["actor", "worker", "assignment__worker", "assignment__media", "task"]
    search_fields = ["reason", "worker__external_id"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The audit of every decision: kept whatever happens.
        return False
