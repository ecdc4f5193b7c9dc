"""Jobs in the tenant-scoped admin: read-only records with state and progress, and the actions
retry and cancel. Jobs are started by the pages and commands that need them, never here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from platform_core.admin_tenancy import TenantModelAdmin
from platform_core.jobs.core import job_display_state, job_kind_label
from platform_core.jobs.services import job_cancel, job_retry
from platform_core.models import Job


@admin.register(Job)
class JobAdmin(TenantModelAdmin):
    list_display = [
        "__str__",
        "kind_label",
        "state_badge",
        "progress",
        "organization",
        "project",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
    list_filter = ["state", "kind", "organization"]
    list_select_related = ["organization", "project", "created_by"]
    search_fields = ["kind", "message", "created_by__username"]
    date_hierarchy = "created_at"
    actions = ["retry_jobs", "cancel_jobs"]
    readonly_fields = [
        "organization",
        "project",
        "kind",
        "state_badge",
        "progress",
        "message",
        "params",
        "report",
        "result_file",
        "attempts",
        "created_by",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "task_result_id",
    ]
    fields = readonly_fields

    def view_on_site(self, obj: Job) -> str:
        return reverse("job_detail", kwargs={"org_slug": obj.organization.slug, "job_id": obj.pk})

    # Read-only: a job's record is written by its runner; people act on it through the actions.
    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    @admin.display(description="kind", ordering="kind")
    def kind_label(self, obj: Job) -> str:
        return job_kind_label(obj.kind)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: Job) -> str:
        state = job_display_state(obj)
        label = "Stalled" if state == "stalled" else obj.get_state_display()
        return format_html('<span class="job-state job-state-{}">{}</span>', state, label)

    @admin.display(description="progress")
    def progress(self, obj: Job) -> str:
        if not obj.progress_total:
            return format_html(
                '<progress max="1" value="{}"></progress> {}%', 1 if obj.percent == 100 else 0, obj.percent
            )
        return format_html(
            '<progress max="{}" value="{}"></progress> {} / {}',
            obj.progress_total,
            obj.progress_done,
            obj.progress_done,
            obj.progress_total,
        )

    def _act(self, request: HttpRequest, queryset: QuerySet, action: Any, verb: str) -> None:
        done, refused = 0, []
        # The queryset is the tenant-scoped changelist's: only this manager's organisations.
        for job in queryset:
            try:
                action(job=job, actor=request.user)
                done += 1
            except ValidationError as exc:
                refused.append(f"#{job.pk}: {' '.join(exc.messages)}")
        if done:
            self.message_user(request, f"{done} job{'s' if done != 1 else ''} {verb}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed: " + "; ".join(refused), messages.WARNING)

    @admin.action(description="Retry the selected failed, cancelled or stalled jobs")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._act(request, queryset, job_retry, "queued again")

    @admin.action(description="Cancel the selected queued or running jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._act(request, queryset, job_cancel, "cancelled")
