"""The crowd worker's pages: entry from a study link or a Mechanical Turk HIT, the qualification
test, the task page and its image, the end of a visit.

Workers have no account and no session: each page after the entry is reached by a signed token
(``crowd.tokens``). These are the only pages that may be framed, and only by the MTurk hosts
(``CROWD_MTURK_HOSTS``): Mechanical Turk shows an ExternalQuestion in an iframe.

Gold items go through exactly the same code paths as regular ones: nothing a page, header or image
URL carries tells them apart.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from csp.decorators import csp_replace
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models.fields.files import FieldFile
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from annotation.models import MediaItem
from crowd import selectors, services
from crowd.models import CrowdBatch, CrowdWorker, GoldItem, Provider
from crowd.tokens import TokenRefused, assignment_from_token, assignment_token, attempt_from_token, attempt_token

PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# MTurk frames these pages and receives their last form; a study link's end is a redirect after a
# form post, which form-action also governs.
WORKER_CSP = {
    "frame-ancestors": list(settings.CROWD_MTURK_HOSTS),
    "form-action": ["'self'", *settings.CROWD_MTURK_HOSTS, _origin(settings.CROWD_LINK_COMPLETION_URL)],
}


def worker_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Frameable by the MTurk hosts only; never cached; the token in the URL is not sent on as a
    Referer (to the provider the worker is sent back to)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        return response

    return xframe_options_exempt(csp_replace(WORKER_CSP)(wrapper))


def _message(request: HttpRequest, title: str, text: str, *, status: int = 200) -> HttpResponse:
    return render(request, "crowd/message.html", {"title": title, "text": text}, status=status)


def _refused(request: HttpRequest, exc: TokenRefused) -> HttpResponse:
    return _message(request, "Link refused", str(exc), status=403)


def _no_more_work(request: HttpRequest) -> HttpResponse:
    return _message(
        request,
        "No more work",
        "Thank you for your interest. There is no more work for you in this study at the moment.",
    )


def _open_batch(public_id: str, provider: str) -> CrowdBatch:
    return get_object_or_404(
        CrowdBatch.objects.select_related("project", "question"),
        public_id=public_id,
        provider=provider,
        state=CrowdBatch.State.OPEN,
    )


# --- entry ----------------------------------------------------------------------------------
@worker_page
@require_GET
def link_entry(request: HttpRequest, public_id: str) -> HttpResponse:
    batch = _open_batch(public_id, Provider.LINK)
    params = request.GET
    context = {"study_id": params.get("STUDY_ID", "")[:100], "session_id": params.get("SESSION_ID", "")[:100]}
    return _enter(request, batch, params.get("PROLIFIC_PID", ""), context)


@worker_page
@require_GET
def mturk_entry(request: HttpRequest, public_id: str) -> HttpResponse:
    batch = _open_batch(public_id, Provider.MTURK)
    params = request.GET
    assignment_id = params.get("assignmentId", "")
    if assignment_id == PREVIEW_ASSIGNMENT:
        # MTurk's preview: the task as it will look, with nothing handed out and nothing to submit.
        return render(request, "crowd/task.html", _task_context(batch, image_url=_preview_url(batch), preview=True))
    turk_submit_to = params.get("turkSubmitTo", "").rstrip("/")
    if not assignment_id or turk_submit_to not in settings.CROWD_MTURK_HOSTS:
        return _message(request, "Incomplete link", "Open this task from its Mechanical Turk HIT.", status=400)
    context = {
        "assignment_id": assignment_id[:64],
        "hit_id": params.get("hitId", "")[:64],
        "turk_submit_to": turk_submit_to,
    }
    return _enter(request, batch, params.get("workerId", ""), context)


def _enter(request: HttpRequest, batch: CrowdBatch, external_id: str, context: dict[str, str]) -> HttpResponse:
    try:
        worker = services.worker_enter(batch=batch, external_id=external_id)
        if worker.blocked:
            return _no_more_work(request)
        qualification = services.qualification_begin(worker=worker, batch=batch, context=context)
    except ValidationError as exc:
        return _message(request, "Not available", " ".join(exc.messages), status=400)
    if qualification.state == "attempt":
        return redirect("crowd_qualification", token=attempt_token(qualification.attempt))
    if qualification.state == "wait":
        return _screened_out(request, batch, retake_at=qualification.retake_at)
    return _next(request, batch, worker, context)


def _next(request: HttpRequest, batch: CrowdBatch, worker: CrowdWorker, context: dict[str, str]) -> HttpResponse:
    assignment = services.assignment_next(batch=batch, worker=worker, context=context)
    if assignment is not None:
        return redirect("crowd_task", token=assignment_token(assignment))
    return _finish(request, batch, worker, context)


def _finish(request: HttpRequest, batch: CrowdBatch, worker: CrowdWorker, context: dict[str, str]) -> HttpResponse:
    """The end of a visit: back to the study with its completion code, or MTurk's submit form."""
    last = selectors.visit_last_submitted(batch=batch, worker=worker, context=context)
    if last is None:
        return _no_more_work(request)
    if batch.provider == Provider.MTURK:
        return render(
            request,
            "crowd/mturk_submit.html",
            {
                "action": f"{last.turk_submit_to}/mturk/externalSubmit",
                "assignment_id": last.assignment_id,
                "answer": last.answer,
            },
        )
    if worker.blocked or not batch.completion_code:
        return _no_more_work(request)
    return HttpResponseRedirect(_completion_url(batch.completion_code))


def _completion_url(code: str) -> str:
    return f"{settings.CROWD_LINK_COMPLETION_URL}?{urlencode({'cc': code})}"


def _screened_out(request: HttpRequest, batch: CrowdBatch, *, retake_at: datetime | None = None) -> HttpResponse:
    if batch.provider == Provider.LINK and batch.screenout_code:
        return HttpResponseRedirect(_completion_url(batch.screenout_code))
    text = "Thank you for taking the test. Your score did not reach the mark needed for this task."
    if retake_at is not None:
        text += f" You may try again after {retake_at:%Y-%m-%d %H:%M} UTC."
    if batch.provider == Provider.MTURK:
        text += " Please return the HIT."
    return _message(request, "Not qualified", text)


# --- qualification --------------------------------------------------------------------------
@worker_page
@csrf_exempt  # no session to ride on: the signed token with its single-use nonce is the credential
@require_http_methods(["GET", "POST"])
def qualification(request: HttpRequest, token: str) -> HttpResponse:
    try:
        attempt = attempt_from_token(token)
    except TokenRefused as exc:
        return _refused(request, exc)
    gold = services.qualification_gold(attempt)
    error = ""
    if request.method == "POST":
        answers = [request.POST.get(f"answer-{index}", "") for index in range(len(gold))]
        try:
            attempt = services.qualification_submit(attempt=attempt, answers=answers)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            if not attempt.passed:
                return _screened_out(request, attempt.batch)
            return _next(request, attempt.batch, attempt.worker, attempt.context)
    question = attempt.test.question
    items = [
        {
            "index": index,
            "image_url": reverse("crowd_qualification_image", kwargs={"token": token, "index": index}),
            "choices": _choices(question.choices),
        }
        for index in range(len(gold))
    ]
    return render(
        request,
        "crowd/qualification.html",
        {"question": question, "items": items, "error": error},
        status=400 if error else 200,
    )


@worker_page
@require_GET
def qualification_image(request: HttpRequest, token: str, index: int) -> HttpResponse:
    try:
        attempt = attempt_from_token(token)
    except TokenRefused as exc:
        return _refused(request, exc)
    if index >= len(attempt.items):
        raise Http404("No such item.")
    gold = GoldItem.objects.select_related("media").filter(pk=attempt.items[index]).first()
    if gold is None:
        raise Http404("No such item.")
    return _image(gold.media)


# --- the task -------------------------------------------------------------------------------
def _choices(choices: list[str]) -> list[dict[str, Any]]:
    return [{"key": index + 1 if index < 9 else None, "text": choice} for index, choice in enumerate(choices)]


def _task_context(batch: CrowdBatch, *, image_url: str, preview: bool = False, error: str = "") -> dict[str, Any]:
    return {
        "question": batch.question,
        "choices": _choices(batch.question.choices),
        "image_url": image_url,
        "preview": preview,
        "error": error,
    }


@worker_page
@csrf_exempt  # no session to ride on: the signed token with its single-use nonce is the credential
@require_http_methods(["GET", "POST"])
def task(request: HttpRequest, token: str) -> HttpResponse:
    try:
        assignment = assignment_from_token(token)
    except TokenRefused as exc:
        return _refused(request, exc)
    batch = assignment.batch
    if assignment.worker.blocked:
        return _no_more_work(request)
    error = ""
    if request.method == "POST":
        try:
            assignment = services.assignment_submit(assignment=assignment, answer=request.POST.get("answer", ""))
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            context = {
                "assignment_id": assignment.assignment_id,
                "hit_id": assignment.hit_id,
                "turk_submit_to": assignment.turk_submit_to,
                "study_id": assignment.study_id,
                "session_id": assignment.session_id,
            }
            return _next(request, batch, assignment.worker, context)
    return render(
        request,
        "crowd/task.html",
        _task_context(batch, image_url=reverse("crowd_task_image", kwargs={"token": token}), error=error),
        status=400 if error else 200,
    )


@worker_page
@require_GET
def task_image(request: HttpRequest, token: str) -> HttpResponse:
    try:
        assignment = assignment_from_token(token)
    except TokenRefused as exc:
        return _refused(request, exc)
    return _image(assignment.media)


def _preview_url(batch: CrowdBatch) -> str:
    return reverse("crowd_preview_image", kwargs={"public_id": batch.public_id})


@worker_page
@require_GET
def preview_image(request: HttpRequest, public_id: str) -> HttpResponse:
    """The example item of an MTurk preview: the first regular (never a gold) item of the batch."""
    batch = _open_batch(public_id, Provider.MTURK)
    media = selectors.batch_example_item(batch=batch)
    if media is None:
        raise Http404("No example item.")
    return _image(media)


def _image(media: MediaItem) -> HttpResponse:
    """The stored file with only the headers every item shares: no name, date or tag of its own."""
    field: FieldFile = media.file
    try:
        with field.storage.open(field.name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise Http404("The stored file is missing.") from None
    # Not a FileResponse: that would name the stored file in a Content-Disposition header.
    response = HttpResponse(data, content_type=media.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    return response
