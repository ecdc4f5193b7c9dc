"""The dataset pages beside the export: import a COCO file or zip (the project page's form, a job),
merge other projects into this one (a page, a job) and the project's saved splits (a page)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotation.datasets.import_job import dataset_import_start
from annotation.datasets.merge import dataset_merge_start
from annotation.datasets.splits import SUBSETS, dataset_split_create, split_list
from annotation.datasets.transfer_forms import ImportForm, MergeForm, SplitForm
from annotation.models import Project
from annotation.selectors import project_get
from platform_core.models import Role
from platform_core.tenancy import member_required


@member_required(role=Role.MANAGER)
@require_POST
def dataset_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a COCO file (.json) or a zip of images with one COCO file to import.")
        return redirect(project)
    upload = form.cleaned_data["file"]
    try:
        job = dataset_import_start(
            tenant=request.tenant,
            project=project,
            actor=request.user,
            uploaded_file=upload,
            create_labels=form.cleaned_data["create_labels"],
            proposed=not form.cleaned_data["as_accepted"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(project)
    messages.success(request, f"Importing {upload.name} in the background.")
    return redirect("job_detail", org_slug=request.tenant.org.slug, job_id=job.pk)


@member_required(role=Role.MANAGER)
@require_http_methods(["GET", "POST"])
def dataset_merge(request: HttpRequest, project_id: int) -> HttpResponse:
    tenant = request.tenant
    project = project_get(tenant, project_id)
    others = Project.objects.for_org(tenant.org).exclude(pk=project.pk).order_by("name", "id")
    form = MergeForm(request.POST or None, projects=others)
    if request.method == "POST" and form.is_valid():
        sources = form.cleaned_data["sources"]
        try:
            job = dataset_merge_start(
                tenant=tenant,
                project=project,
                actor=request.user,
                sources=[source.pk for source in sources],
                create_labels=form.cleaned_data["create_labels"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            names = ", ".join(source.name for source in sources)
            messages.success(request, f"Copying {names} into {project.name} in the background.")
            return redirect("job_detail", org_slug=tenant.org.slug, job_id=job.pk)
    return render(request, "annotation/dataset_merge.html", {"project": project, "form": form})


@member_required(role=Role.MANAGER)
@require_http_methods(["GET", "POST"])
def dataset_splits(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    form = SplitForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            split = dataset_split_create(
                project=project, name=data["name"], ratios=data["ratios"], seed=data["seed"], actor=request.user
            )
        except ValidationError as exc:
            form.add_error(None, exc)  # a field's error goes to that field
        else:
            messages.success(request, f"Saved the split {split.name}.")
            return redirect("dataset_splits", org_slug=request.tenant.org.slug, project_id=project.pk)
    context = {"project": project, "form": form, "splits": split_list(project), "subsets": SUBSETS}
    return render(request, "annotation/dataset_splits.html", context)
