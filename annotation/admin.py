"""Projects, labels, questions, media and tasks in the tenant-scoped admin.

Every write that has a service goes through it: uploads through ``media_create_image`` (the same
checks and re-encoding as the upload page and the API), splitting and assigning through the task
services. Every object, choice and action is scoped by ``TenantModelAdmin``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from annotation.media_services import media_create_image
from annotation.models import Label, MediaItem, Project, Question, Task
from annotation.tasks.services import MAX_TASK_SIZE, task_assign, task_delete, tasks_assign, tasks_split
from platform_core.admin_tenancy import TenantModelAdmin, TenantTabularInline, admin_tenant
from platform_core.models import Membership, Organization


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _refusal(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def members_of(org: Organization) -> QuerySet:
    """The users who are members of ``org``: the only people its tasks may go to."""
    return (
        get_user_model().objects.filter(memberships__in=Membership.objects.for_org(org)).distinct().order_by("username")
    )


# --- intermediate pages of the actions ------------------------------------------------------
class TaskSizeForm(forms.Form):
    size = forms.IntegerField(min_value=1, max_value=MAX_TASK_SIZE, initial=50, label="Items per task")


class AssigneesForm(forms.Form):
    assignees = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.none(),
        widget=forms.CheckboxSelectMultiple,
        label="Assign to",
        help_text="One person gets every selected task; several share them round robin.",
    )

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only members of the tasks' organisation are offered, and only they are accepted.
        self.fields["assignees"].queryset = members_of(org)
        self.fields["assignees"].label_from_instance = lambda user: user.get_username()


def action_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    intro: str,
    form: forms.Form,
    submit: str,
) -> TemplateResponse:
    """The page an action shows before it acts. It posts back to the changelist with the selected
    ids, where Django filters them through the admin's scoped queryset again."""
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "opts": opts,
        "queryset": queryset,
        "form": form,
        "action": action,
        "submit": submit,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    status = 400 if form.is_bound and form.errors else 200
    return TemplateResponse(request, "admin/annotation/action_form.html", context, status=status)


def split_into_tasks(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, *, pools: dict[Project, Any]
) -> TemplateResponse | None:
    """Ask for the task size, then split each project's pool (its items, or the selected ones)."""
    form = TaskSizeForm(request.POST if "apply" in request.POST else None)
    if not form.is_valid():
        names = ", ".join(sorted({project.name for project in pools}))
        return action_page(
            model_admin,
            request,
            queryset,
            action="split_into_tasks",
            title="Split into tasks",
            intro=f"Items that are in no task yet ({names}) are split into tasks of this size, in upload order.",
            form=form,
            submit="Split",
        )
    size = form.cleaned_data["size"]
    for project, items in pools.items():
        try:
            tasks = tasks_split(
                tenant=admin_tenant(request, project.organization),
                project=project,
                size=size,
                items=items,
                actor=request.user,
            )
        except ValidationError as exc:
            model_admin.message_user(request, f"{project.name}: {_refusal(exc)}", messages.WARNING)
        else:
            model_admin.message_user(request, f"{project.name}: made {_plural(len(tasks), 'task')}.", messages.SUCCESS)
    return None


# --- projects -------------------------------------------------------------------------------
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
    actions = ["split_into_tasks"]

    def save_model(self, request: HttpRequest, obj: Project, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self) -> list:
        name = f"{self.opts.app_label}_{self.opts.model_name}_upload"
        upload = path("<path:object_id>/upload/", self.admin_site.admin_view(self.upload_view), name=name)
        return [upload, *super().get_urls()]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        project = self.get_object(request, unquote(object_id))
        media = project.media.all()
        extra_context = {
            **(extra_context or {}),
            "upload_url": reverse("admin:annotation_project_upload", args=[project.pk]),
            "media_count": media.count(),
            "pool_count": media.filter(task__isnull=True).count(),
            "media_list_url": reverse("admin:annotation_mediaitem_changelist") + f"?project__id__exact={project.pk}",
            "task_list_url": reverse("admin:annotation_task_changelist") + f"?project__id__exact={project.pk}",
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def upload_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Images chosen on the project's change page: each is stored or refused on its own."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        project = self.get_object(request, unquote(object_id))  # 404 outside the manager's organisations
        if not self.has_change_permission(request, project):
            raise PermissionDenied
        uploads = request.FILES.getlist("files")
        if not uploads:
            self.message_user(request, "Choose one or more images to upload.", messages.WARNING)
        stored = 0
        for upload in uploads:
            name = upload.name or "upload"
            try:
                media_create_image(project=project, name=name, data=upload, uploaded_by=request.user)
            except ValidationError as exc:
                self.message_user(request, f"“{name}” was not stored: {_refusal(exc)}", messages.ERROR)
            else:
                stored += 1
        if stored:
            self.message_user(request, f"Stored {_plural(stored, 'image')}.", messages.SUCCESS)
        return redirect("admin:annotation_project_change", project.pk)

    @admin.action(description="Split the selected projects' items into tasks")
    def split_into_tasks(self, request: HttpRequest, queryset: QuerySet[Project]) -> TemplateResponse | None:
        projects = queryset.select_related("organization")
        return split_into_tasks(self, request, projects, pools={project: None for project in projects})


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


# --- questions ------------------------------------------------------------------------------
class QuestionForm(forms.ModelForm):
    choices = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), help_text="One answer a line.")

    class Meta:
        model = Question
        fields = ["project", "label", "text", "choices", "default", "required", "order"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.initial.get("choices"), list):
            self.initial["choices"] = "\n".join(self.initial["choices"])

    def clean_choices(self) -> list[str]:
        # Parsing only: the model's clean() judges the list (count, length, duplicates, default).
        return [line.strip() for line in self.cleaned_data["choices"].splitlines() if line.strip()]


@admin.register(Question)
class QuestionAdmin(TenantModelAdmin):
    form = QuestionForm
    list_display = ["text", "project", "label", "scope", "choice_list", "default", "required", "order"]
    list_filter = ["project", "required"]
    list_select_related = ["project", "label"]
    search_fields = ["text", "project__name", "label__name"]
    autocomplete_fields = ["project"]

    @admin.display(description="scope")
    def scope(self, obj: Question) -> str:
        return "each object" if obj.label_id else "each item"

    @admin.display(description="choices")
    def choice_list(self, obj: Question) -> str:
        return " / ".join(obj.choices)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "label" and field is not None:
            # Label names repeat across projects: say whose each one is.
            field.queryset = field.queryset.select_related("project")
            field.label_from_instance = lambda label: f"{label.project.name} · {label.name}"
            field.help_text = "Empty for a question about each item; a label of the same project otherwise."
        return field


# --- media ----------------------------------------------------------------------------------
@admin.register(MediaItem)
class MediaItemAdmin(TenantModelAdmin):
    list_display = ["preview", "original_name", "project", "task", "kind", "state", "width", "height", "created_at"]
    list_display_links = ["preview", "original_name"]
    list_filter = ["kind", "state", "project", "task"]
    list_select_related = ["project__organization", "task"]
    search_fields = ["original_name", "project__name"]
    actions = ["split_into_tasks"]
    fields = [
        "preview",
        "project",
        "task",
        "kind",
        "original_name",
        "content_type",
        "width",
        "height",
        "size_bytes",
        "state",
        "state_detail",
        "frame_count",
        "fps",
        "duration_s",
        "file",
        "uploaded_by",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Files enter through the upload service (on the project's page here), which sniffs,
        # limits and normalises them.
        return False

    @admin.display(description="")
    def preview(self, obj: MediaItem) -> str:
        url = reverse("media_thumbnail", kwargs={"org_slug": obj.project.organization.slug, "media_id": obj.pk})
        return format_html('<img src="{}" alt="" class="admin-thumb" loading="lazy">', url)

    @admin.action(description="Split the selected items into tasks")
    def split_into_tasks(self, request: HttpRequest, queryset: QuerySet[MediaItem]) -> TemplateResponse | None:
        projects = Project.objects.filter(pk__in=queryset.values("project")).select_related("organization")
        pools = {project: queryset.filter(project=project) for project in projects}
        return split_into_tasks(self, request, queryset, pools=pools)


# --- tasks ----------------------------------------------------------------------------------
@admin.register(Task)
class TaskAdmin(TenantModelAdmin):
    list_display = ["name", "project", "assignee", "state", "progress", "updated_at"]
    list_filter = ["state", "project", "assignee"]
    list_select_related = ["project__organization", "assignee"]
    search_fields = ["name", "project__name", "assignee__username"]
    fields = ["project", "name", "assignee", "state", "progress", "created_by", "created_at", "updated_at"]
    readonly_fields = ["project", "state", "progress", "created_by", "created_at", "updated_at"]
    actions = ["assign_to_members"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                item_count=Count("items", distinct=True),
                done_count=Count("items", filter=Q(items__done_at__isnull=False), distinct=True),
            )
        )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        # Tasks are made by splitting a project's items (the action on projects and media).
        return False

    def get_form(self, request: HttpRequest, obj: Task | None = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        if obj is not None and "assignee" in form.base_fields:
            form.base_fields["assignee"].queryset = members_of(obj.project.organization)
        return form

    def save_model(self, request: HttpRequest, obj: Task, form: Any, change: bool) -> None:
        if change and "assignee" in form.changed_data:
            task_assign(
                tenant=admin_tenant(request, obj.project.organization),
                task=obj,
                assignee=obj.assignee,
                actor=request.user,
            )
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Task) -> None:
        task_delete(tenant=admin_tenant(request, obj.project.organization), task=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        for task in queryset.select_related("project__organization"):
            self.delete_model(request, task)

    @admin.display(description="progress")
    def progress(self, obj: Task) -> str:
        done = getattr(obj, "done_count", None)
        total = getattr(obj, "item_count", None)
        if total is None:
            total, done = obj.items.count(), obj.items.filter(done_at__isnull=False).count()
        return format_html('<progress max="{}" value="{}"></progress> {} / {}', total or 1, done, done, total)

    @admin.action(description="Assign the selected tasks to members")
    def assign_to_members(self, request: HttpRequest, queryset: QuerySet[Task]) -> TemplateResponse | None:
        orgs = Organization.objects.filter(pk__in=queryset.values("project__organization"))
        if orgs.count() != 1:
            self.message_user(request, "Choose tasks of one organisation at a time.", messages.WARNING)
            return None
        org = orgs.get()
        form = AssigneesForm(request.POST if "apply" in request.POST else None, org=org)
        if not form.is_valid():
            return action_page(
                self,
                request,
                queryset,
                action="assign_to_members",
                title="Assign tasks",
                intro=f"Members of {org.name} who may work on the selected tasks.",
                form=form,
                submit="Assign",
            )
        tasks = list(queryset.select_related("project"))
        assignees = list(form.cleaned_data["assignees"])
        tasks_assign(tenant=admin_tenant(request, org), tasks=tasks, assignees=assignees, actor=request.user)
        names = ", ".join(user.get_username() for user in assignees)
        self.message_user(request, f"Assigned {_plural(len(tasks), 'task')} to {names}.", messages.SUCCESS)
        return None
