"""Member pages of the crowd machinery: a project's batches, a new batch, a batch's page (entry
URLs, progress, cost, workers, results, history; close / reopen, aggregate, CSV) and the review
queue (crowd answers, aggregated results that need a person, members' submitted tasks).

Reviewers and above see these pages and review; managers and owners create, close and aggregate
batches. Review forms post with htmx and get their row back; without htmx they redirect to the
page they came from. Each review form carries a fresh request key, so a double click or a retried
post is one decision.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from annotation.models import Label
from annotation.selectors import project_get
from crowd import batches, mturk_jobs, results, review
from crowd import manage_selectors as selectors
from crowd.models import CrowdBatch, CrowdResult
from crowd.selectors import batch_entry_urls
from platform_core.models import Role
from platform_core.tenancy import member_required

RESULTS_PAGE_SIZE = 100
QUEUE_PAGE_SIZE = 50
QUEUE_RESULTS_SHOWN = 50
QUEUE_TASKS_SHOWN = 100


def fresh_request_key() -> str:
    """A new key for one review form. Handed to templates as a callable, so that each form that
    reads it gets its own."""
    return uuid.uuid4().hex


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """Where a form without htmx goes after a decision: the page it came from, if on this site."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return HttpResponseRedirect(target, status=303)


def _queue_url(request: HttpRequest) -> str:
    return reverse("crowd_review_queue", kwargs={"org_slug": request.tenant.org.slug})


def _batch_url(request: HttpRequest, batch: CrowdBatch) -> str:
    return reverse("crowd_batch_detail", kwargs={"org_slug": request.tenant.org.slug, "batch_id": batch.pk})


def _result_rows(request: HttpRequest, found: Iterable[CrowdResult]) -> list[dict[str, Any]]:
    return [{"result": r, "fix_url": selectors.result_fix_url(request.tenant, r)} for r in found]


# --- batches -----------------------------------------------------------------------------------
class BatchForm(forms.ModelForm):
    """A new batch of one project: its questions and mask labels only."""

    class Meta:
        model = CrowdBatch
        fields = [
            "name",
            "kind",
            "question",
            "label",
            "provider",
            "assignments_per_item",
            "gold_rate",
            "reward_cents",
            "items_per_session",
            "agreement_threshold",
            "completion_code",
            "screenout_code",
        ]
        labels = {"assignments_per_item": "Answers per item (k)", "reward_cents": "Reward per answer (cents)"}

    def __init__(self, *args: Any, project: Any, **kwargs: Any) -> None:
        super().__init__(*args, instance=CrowdBatch(project=project), **kwargs)
        self.fields["question"].queryset = project.questions.select_related("label").order_by("label", "order", "id")
        self.fields["label"].queryset = project.labels.filter(kind=Label.Kind.MASK)


@member_required(role=Role.REVIEWER)
@require_GET
def batch_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_get(request.tenant, project_id)
    context = {
        "project": project,
        "rows": selectors.batch_list(request.tenant, project),
        "can_manage": request.tenant.can_manage,
    }
    return render(request, "crowd/manage_batch_list.html", context)


@member_required(role=Role.MANAGER)
@require_http_methods(["GET", "POST"])
def batch_create(request: HttpRequest, project_id: int) -> HttpResponse:
    tenant = request.tenant
    project = project_get(tenant, project_id)
    form = BatchForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        fields = {name: value for name, value in form.cleaned_data.items() if name in batches.BATCH_FIELDS}
        try:
            batch = batches.batch_create(tenant=tenant, project=project, actor=request.user, **fields)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Batch “{batch.name}” created.")
            return HttpResponseRedirect(_batch_url(request, batch))
    status = 400 if form.errors else 200
    return render(request, "crowd/manage_batch_form.html", {"project": project, "form": form}, status=status)


@member_required(role=Role.REVIEWER)
@require_GET
@vary_on_headers("HX-Request")
def batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    tenant = request.tenant
    batch = selectors.batch_get(tenant, batch_id)
    page = Paginator(selectors.batch_results(batch), RESULTS_PAGE_SIZE).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "batch": batch,
        "project": batch.project,
        "results": page,
        "result_rows": _result_rows(request, page),
        "can_manage": tenant.can_manage,
        "fresh_request_key": fresh_request_key,
    }
    if request.htmx:
        # The results' pager asks for the results table alone.
        return render(request, "crowd/manage_batch_detail.html#results-table", context)
    workers, workers_total = selectors.batch_workers(batch)
    context.update(
        entry_urls=batch_entry_urls(batch),
        progress=selectors.batch_progress(batch),
        cost=selectors.batch_cost(batch),
        workers=workers,
        workers_total=workers_total,
        history=selectors.batch_history(batch),
        hit_count=batch.hits.count(),
    )
    return render(request, "crowd/manage_batch_detail.html", context)


@member_required(role=Role.MANAGER)
@require_POST
def batch_state(request: HttpRequest, batch_id: int) -> HttpResponse:
    """Close (no more assignments are handed out) or reopen a batch."""
    batch = selectors.batch_get(request.tenant, batch_id)
    state = request.POST.get("state", "")
    if state not in CrowdBatch.State.values:
        messages.error(request, "Choose to close or to reopen the batch.")
    else:
        batch = batches.batch_set_state(tenant=request.tenant, batch=batch, state=state, actor=request.user)
        messages.success(request, f"Batch “{batch.name}” is {batch.get_state_display().lower()}.")
    return HttpResponseRedirect(_batch_url(request, batch), status=303)


@member_required(role=Role.MANAGER)
@require_POST
def batch_aggregate(request: HttpRequest, batch_id: int) -> HttpResponse:
    """Aggregate the batch's answers now; the page then shows the results."""
    batch = selectors.batch_get(request.tenant, batch_id)
    started = time.perf_counter()
    summary = results.batch_aggregate(batch)
    seconds = time.perf_counter() - started
    messages.success(
        request,
        f"Aggregated {summary.units} unit{'s' if summary.units != 1 else ''} in {seconds:.1f} s: "
        f"{summary.needs_review} need review, {summary.written} answer{'s' if summary.written != 1 else ''} written.",
    )
    return HttpResponseRedirect(_batch_url(request, batch), status=303)


@member_required(role=Role.REVIEWER)
@require_POST
def batch_mturk(request: HttpRequest, batch_id: int) -> HttpResponse:
    """Publish the batch's HITs on Mechanical Turk (managers) or sync it now (reviewers and above),
    as a job; the Jobs page follows it."""
    batch = selectors.batch_get(request.tenant, batch_id)
    action = request.POST.get("action", "")
    start = {"publish": mturk_jobs.mturk_publish_start, "sync": mturk_jobs.mturk_sync_start}.get(action)
    if start is None:
        messages.error(request, "Choose to publish or to sync the batch.")
        return HttpResponseRedirect(_batch_url(request, batch), status=303)
    try:
        job = start(tenant=request.tenant, batch=batch, actor=request.user)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        verb = "Publishing" if action == "publish" else "Syncing"
        messages.success(request, f"{verb} on Mechanical Turk: job #{job.pk} (see Jobs).")
    return HttpResponseRedirect(_batch_url(request, batch), status=303)


@member_required(role=Role.REVIEWER)
@require_GET
def batch_results_csv(request: HttpRequest, batch_id: int) -> StreamingHttpResponse:
    batch = selectors.batch_get(request.tenant, batch_id)
    response = StreamingHttpResponse(selectors.batch_results_csv(batch), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="crowd-batch-{batch.pk}-results.csv"'
    return response


# --- the review queue --------------------------------------------------------------------------
@member_required(role=Role.REVIEWER)
@require_GET
def review_queue(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    waiting = selectors.review_results(tenant)
    tasks = selectors.review_tasks(tenant)
    context = {
        "assignments": Paginator(selectors.review_assignments(tenant), QUEUE_PAGE_SIZE).get_page(
            request.GET.get("page")
        ),
        "results": _result_rows(request, waiting[:QUEUE_RESULTS_SHOWN]),
        "results_total": waiting.count(),
        "tasks": tasks[:QUEUE_TASKS_SHOWN],
        "tasks_total": tasks.count(),
        "fresh_request_key": fresh_request_key,
    }
    return render(request, "crowd/manage_review.html", context)


def _row(request: HttpRequest, partial: str, context: dict[str, Any], default: str) -> HttpResponse:
    """The changed row for htmx (a 200 also when it shows an error: htmx swaps no 4xx), else
    back to the page with the outcome as a message."""
    if request.htmx:
        context["fresh_request_key"] = fresh_request_key
        context["next_url"] = request.htmx.current_url_abs_path or ""
        return render(request, f"crowd/manage_review.html#{partial}", context)
    if context.get("error"):
        messages.error(request, context["error"])
    elif context.get("done"):
        messages.success(request, context["done"])
    return _back(request, default)


@member_required(role=Role.REVIEWER)
@require_POST
def assignment_review(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """Approve, or reject with a reason, one crowd answer."""
    assignment = selectors.assignment_get(request.tenant, assignment_id)
    decision = request.POST.get("decision")
    context: dict[str, Any] = {"assignment": assignment}
    if decision not in ("approve", "reject"):
        context["error"] = "Choose to approve or to reject the answer."
    else:
        try:
            review.assignment_review(
                tenant=request.tenant,
                assignment=assignment,
                approve=decision == "approve",
                reason=request.POST.get("reason", ""),
                actor=request.user,
                request_key=request.POST.get("request_key", ""),
            )
        except ValidationError as exc:
            context["error"] = _errors(exc)
        else:
            context["done"] = f"Answer {decision}d."
        context["assignment"] = selectors.assignment_get(request.tenant, assignment_id)
    return _row(request, "assignment-row", context, _queue_url(request))


def _cents(amount: str) -> int | None:
    """Dollars as typed ("0.50", "2") in whole cents; None for anything else."""
    try:
        value = Decimal(amount.strip())
    except (InvalidOperation, AttributeError):
        return None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        return None
    return int(value * 100)


@member_required(role=Role.REVIEWER)
@require_POST
def assignment_bonus(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """A bonus (dollars and a reason) for the worker of one answer."""
    assignment = selectors.assignment_get(request.tenant, assignment_id)
    context: dict[str, Any] = {"assignment": assignment}
    cents = _cents(request.POST.get("amount", ""))
    if cents is None:
        context["error"] = "Give the bonus in dollars, like 0.50."
    else:
        try:
            action = review.bonus_pay(
                tenant=request.tenant,
                assignment=assignment,
                amount_cents=cents,
                reason=request.POST.get("reason", ""),
                actor=request.user,
                request_key=request.POST.get("request_key", ""),
            )
        except ValidationError as exc:
            context["error"] = _errors(exc)
        else:
            context["done"] = f"Bonus of ${action.amount_cents / 100:.2f} recorded."
    return _row(request, "assignment-row", context, _queue_url(request))


@member_required(role=Role.REVIEWER)
@require_POST
def worker_block(request: HttpRequest, worker_id: int) -> HttpResponse:
    """Block (with a reason) or unblock a crowd worker, from a batch's worker table."""
    tenant = request.tenant
    worker = selectors.worker_get(tenant, worker_id)
    batch_id = request.POST.get("batch", "")
    batch = selectors.batch_get(tenant, int(batch_id)) if batch_id.isdigit() else None
    action = request.POST.get("action")
    error = done = ""
    if action not in ("block", "unblock"):
        error = "Choose to block or to unblock the worker."
    else:
        change = review.worker_block if action == "block" else review.worker_unblock
        try:
            change(
                tenant=tenant,
                worker=worker,
                reason=request.POST.get("reason", ""),
                actor=request.user,
                request_key=request.POST.get("request_key", ""),
            )
        except ValidationError as exc:
            error = _errors(exc)
        else:
            done = f"Worker {worker.external_id} {action}ed."
    row = selectors.worker_row(batch, worker) if batch is not None else None
    if request.htmx and row is not None:
        context = {"batch": batch, "row": row, "error": error, "done": done, "fresh_request_key": fresh_request_key}
        return render(request, "crowd/manage_batch_detail.html#worker-row", context)
    if error:
        messages.error(request, error)
    elif done:
        messages.success(request, done)
    return _back(request, _batch_url(request, batch) if batch is not None else _queue_url(request))


@member_required(role=Role.REVIEWER)
@require_POST
def task_review(request: HttpRequest, task_id: int) -> HttpResponse:
    """Accept, or reject with a reason, a member's submitted task."""
    task = selectors.submitted_task_get(request.tenant, task_id)
    decision = request.POST.get("decision")
    context: dict[str, Any] = {"task": task}
    if decision not in ("accept", "reject"):
        context["error"] = "Choose to accept or to reject the task."
    else:
        try:
            review.task_review_with_reason(
                tenant=request.tenant,
                task=task,
                accept=decision == "accept",
                reason=request.POST.get("reason", ""),
                actor=request.user,
                request_key=request.POST.get("request_key", ""),
            )
        except ValidationError as exc:
            context["error"] = _errors(exc)
        else:
            context["done"] = f"{task.name} {decision}ed."
        task.refresh_from_db()
    return _row(request, "task-row", context, _queue_url(request))


@member_required(role=Role.REVIEWER)
@require_POST
def result_review(request: HttpRequest, result_id: int) -> HttpResponse:
    """Settle an aggregated result with the reviewer's answer (masks: as they are)."""
    tenant = request.tenant
    result = selectors.result_get(tenant, result_id)
    context: dict[str, Any] = {"result": result, "fix_url": selectors.result_fix_url(tenant, result)}
    try:
        result = review.result_review(
            tenant=tenant, result=result, answer=request.POST.get("answer", ""), actor=request.user
        )
    except ValidationError as exc:
        context["error"] = _errors(exc)
    else:
        context["done"] = f"Result settled: {result.answer or 'mask kept'}."
        context["result"] = selectors.result_get(tenant, result_id)
    return _row(request, "result-row", context, _queue_url(request))
