"""Project pages: create, edit, delete, the label manager with its questions, and starting a
pre-annotation job.

Each page is one template; its swappable parts are partials rendered alone for htmx requests
(the same URL renders the whole page without htmx)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from annotation.projects import services
from annotation.projects.forms import LabelForm, PreannotateForm, ProjectDeleteForm, ProjectForm, QuestionForm
from annotation.selectors import (
    item_questions,
    label_get,
    label_list,
    label_list_with_counts,
    project_get,
    question_get,
)
from platform_core.models import Role
from platform_core.tenancy import member_required


def _posted(request: HttpRequest) -> Any:
    """The form data of a POST (even an empty one, which must still be validated), else None."""
    return request.POST if request.method == "POST" else None


def _errors(form: Any, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form, per field where it names one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


@member_required(role=Role.MANAGER)
@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(
                organization=request.tenant.org, created_by=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            _errors(form, exc)
        else:
            messages.success(request, f"Project “{project.name}” created. Add its labels next.")
            return redirect("label_manager", org_slug=request.tenant.org.slug, project_id=project.pk)
    return render(request, "annotation/project_form.html", {"form": form, "project": None})


@member_required(role=Role.MANAGER)
@require_http_methods(["GET", "POST"])
def project_edit(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    initial = {"name": project.name, "description": project.description, "media_type": project.media_type}
    form = ProjectForm(_posted(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.project_update(project=project, **form.cleaned_data)
        except ValidationError as exc:
            _errors(form, exc)
            project.refresh_from_db()  # the page names the project as stored, not as typed
        else:
            messages.success(request, "Project saved.")
            return redirect(project)
    return render(request, "annotation/project_form.html", {"form": form, "project": project})


@member_required(role=Role.MANAGER)
@require_http_methods(["GET", "POST"])
def project_delete(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    form = ProjectDeleteForm(_posted(request))
    media_count = project.media.count()
    if request.method == "POST" and form.is_valid():
        try:
            services.project_delete(project=project, confirm_name=form.cleaned_data["confirm_name"])
        except ValidationError as exc:
            _errors(form, exc)
        else:
            messages.success(request, f"Project “{project.name}” deleted.")
            return redirect("dashboard", org_slug=request.tenant.org.slug)
    context = {"form": form, "project": project, "media_count": media_count}
    return render(request, "annotation/project_delete.html", context)


# --- labels and questions ---------------------------------------------------------------------


def _label_page(request: HttpRequest, project: Any, **extra: Any) -> HttpResponse:
    context = {
        "project": project,
        "labels": label_list_with_counts(project),
        "item_questions": item_questions(project),
        "label_form": extra.pop("label_form", None) or LabelForm(),
        "question_form": extra.pop("question_form", None) or QuestionForm(),
        **extra,
    }
    template = "annotation/label_manager.html"
    if request.htmx:
        template += "#label-manager"
    # A form with errors is a 400 for a plain POST; htmx 2 does not swap 4xx answers, so the
    # fragment that shows the errors comes back as a 200.
    invalid = any(f.errors for f in (context["label_form"], context["question_form"]))
    return render(request, template, context, status=400 if invalid and not request.htmx else 200)


@member_required(role=Role.MANAGER)
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def label_manager(request: HttpRequest, project_id: int) -> HttpResponse:
    """The labels of a project: list, add (POST here), and the per-item questions."""
    project = project_get(request.tenant, project_id)
    if request.method == "POST":
        form = LabelForm(request.POST)
        if form.is_valid():
            try:
                services.label_create(project=project, **form.cleaned_data)
            except ValidationError as exc:
                _errors(form, exc)
            else:
                return _after_change(request, project)
        return _label_page(request, project, label_form=form)
    return _label_page(request, project)


def _after_change(request: HttpRequest, project: Any) -> HttpResponse:
    if request.htmx:
        return _label_page(request, project)
    return redirect("label_manager", org_slug=request.tenant.org.slug, project_id=project.pk)


@member_required(role=Role.MANAGER)
@require_POST
def label_edit(request: HttpRequest, project_id: int, label_id: int) -> HttpResponse:
    """Rename, recolour, change the kind or the guideline notes of one label."""
    project = project_get(request.tenant, project_id)
    label = label_get(request.tenant, project, label_id)
    form = LabelForm(request.POST)
    if form.is_valid():
        try:
            services.label_update(label=label, **form.cleaned_data)
        except ValidationError as exc:
            _errors(form, exc)
    if form.errors:
        messages.error(request, f"{label.name}: " + " ".join(e for errs in form.errors.values() for e in errs))
    return _after_change(request, project)


@member_required(role=Role.MANAGER)
@require_POST
def label_move(request: HttpRequest, project_id: int, label_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    label = label_get(request.tenant, project, label_id)
    services.label_move(label=label, offset=-1 if request.POST.get("direction") == "up" else 1)
    return _after_change(request, project)


@member_required(role=Role.MANAGER)
@require_http_methods(["GET", "POST"])
def label_delete(request: HttpRequest, project_id: int, label_id: int) -> HttpResponse:
    """GET: the confirmation, saying how many annotations go with the label; POST: delete."""
    project = project_get(request.tenant, project_id)
    label = label_get(request.tenant, project, label_id)
    if request.method == "POST":
        count = services.label_delete(label=label)
        messages.success(request, f"Label “{label.name}” deleted with {count} annotation{'s' if count != 1 else ''}.")
        return _after_change(request, project)
    context = {"project": project, "label": label, "annotation_count": label.annotations.count()}
    return render(request, "annotation/label_delete.html", context)


@member_required(role=Role.MANAGER)
@require_POST
def question_add(request: HttpRequest, project_id: int) -> HttpResponse:
    """Add a question: about each object of a label (``label`` given) or about each item."""
    project = project_get(request.tenant, project_id)
    # No label: a question about each item. A label that is not this project's is a 404.
    label_id = request.POST.get("label", "")
    label = label_get(request.tenant, project, label_id) if label_id else None
    form = QuestionForm(request.POST)
    if form.is_valid():
        try:
            services.question_create(project=project, label=label, **form.cleaned_data)
        except ValidationError as exc:
            _errors(form, exc)
        else:
            return _after_change(request, project)
    if label is not None:
        messages.error(request, f"{label.name}: " + " ".join(e for errs in form.errors.values() for e in errs))
        return _label_page(request, project)
    return _label_page(request, project, question_form=form)


@member_required(role=Role.MANAGER)
@require_POST
def question_delete(request: HttpRequest, project_id: int, question_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    services.question_delete(question=question_get(request.tenant, project, question_id))
    return _after_change(request, project)


# --- pre-annotation ---------------------------------------------------------------------------


def preannotate_form(project: Any, data: Any = None) -> PreannotateForm:
    return PreannotateForm(data, labels=label_list(project))


@member_required(role=Role.MANAGER)
@require_http_methods(["GET", "POST"])
def preannotate(request: HttpRequest, project_id: int) -> HttpResponse:
    """Start a pre-annotation job on the whole project, or on the items the gallery's selection
    posts here (``step=choose`` shows the form for them first); then on to the job's page."""
    from inference.preannotation import preannotation_start

    project = project_get(request.tenant, project_id)
    selected = request.POST.getlist("items")
    choosing = request.method == "POST" and request.POST.get("step") == "choose"
    scope_selected = choosing or request.POST.get("scope") == "selected"
    if choosing and not selected:
        messages.error(request, "Select at least one item first.")
        return redirect(project)
    form = preannotate_form(project, None if choosing else _posted(request))
    if request.method == "POST" and not choosing and form.is_valid():
        data = form.cleaned_data
        try:
            job = preannotation_start(
                tenant=request.tenant,
                project=project,
                actor=request.user,
                model=data["model"],
                method=data["method"],
                label=data["label"],
                source_label=data["source_label"],
                items=selected if scope_selected else None,
                replace=data["replace"],
                options=form.options() if data["method"] == "automatic" else None,
            )
        except ValidationError as exc:
            _errors(form, exc)
        else:
            count = len(job.params["items"] or [])
            scope = f"{count} selected item{'s' if count != 1 else ''}" if count else "the whole project"
            messages.success(request, f"Pre-annotating {scope} in the background.")
            return redirect("job_detail", org_slug=request.tenant.org.slug, job_id=job.pk)
    context = {"project": project, "form": form, "selected": selected if scope_selected else None}
    return render(request, "annotation/preannotate.html", context, status=400 if form.errors else 200)
