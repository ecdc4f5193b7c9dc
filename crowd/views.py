"""The crowd worker's pages: entry from a study link or a Mechanical Turk HIT, the qualification
test, the task page with its image (and, for object units, the object's mask drawn over it), the
end of a visit.

Workers have no account and no session: each page after the entry is reached by a signed token
(``crowd.tokens``). These are the only pages that may be framed, and only by the MTurk hosts
(``CROWD_MTURK_HOSTS``): Mechanical Turk shows an ExternalQuestion in an iframe.

Gold items go through exactly the same code paths as regular ones: nothing a page, header, image
or overlay URL carries tells them apart. An object's overlay is a PNG the server draws from the
object's mask alone (its label's colour, nothing else), the same way for gold and regular objects.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
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
from PIL import Image

from annotation.masks import mask_decode
from annotation.models import Annotation, MediaItem
from crowd import scoring, selectors, services
from crowd.models import CrowdAssignment, CrowdBatch, CrowdWorker, GoldItem, Provider, QualificationAttempt, TaskKind
from crowd.tokens import TokenRefused, assignment_from_token, assignment_token, attempt_from_token, attempt_token

PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
# The overlay: the object's pixels in its label's colour at this opacity (0-255), its outline opaque.
OVERLAY_FILL_ALPHA = 110


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
        CrowdBatch.objects.select_related("project", "question__label", "label"),
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
        return render(request, "crowd/task.html", _preview_context(batch))
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
                # MTurk wants one field besides the assignment id; a mask stays with us.
                "answer": "mask" if batch.kind == TaskKind.MASK else last.answer,
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
def _qualification_items(token: str, attempt: QualificationAttempt, gold: list[GoldItem], posted: list[str]) -> list:
    test = attempt.test
    choices = _choices(test.question.choices) if test.kind == TaskKind.CLASSIFY else []
    return [
        {
            "index": index,
            "field": f"answer-{index}",
            "alt": f"Picture {index + 1}",
            "image_url": reverse("crowd_qualification_image", kwargs={"token": token, "index": index}),
            "overlay_url": (
                reverse("crowd_qualification_overlay", kwargs={"token": token, "index": index})
                if item.annotation_id is not None
                else ""
            ),
            "choices": choices,
            "posted": posted[index] if index < len(posted) else "",
        }
        for index, item in enumerate(gold)
    ]


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
    posted: list[str] = []
    if request.method == "POST":
        posted = [request.POST.get(f"answer-{index}", "") for index in range(len(gold))]
        try:
            attempt = services.qualification_submit(attempt=attempt, answers=posted)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            if not attempt.passed:
                return _screened_out(request, attempt.batch)
            return _next(request, attempt.batch, attempt.worker, attempt.context)
    test = attempt.test
    label = selectors.unit_label(kind=test.kind, question=test.question, label=test.label)
    context = {
        "mask": test.kind == TaskKind.MASK,
        "question": test.question,
        "label": label,
        "items": _qualification_items(token, attempt, gold, posted if test.kind == TaskKind.MASK else []),
        "error": error,
    }
    return render(request, "crowd/qualification.html", context, status=400 if error else 200)


def _attempt_gold(token: str, index: int) -> tuple[QualificationAttempt, GoldItem]:
    attempt = attempt_from_token(token)
    if index >= len(attempt.items):
        raise Http404("No such item.")
    gold = GoldItem.objects.select_related("media", "annotation").filter(pk=attempt.items[index]).first()
    if gold is None:
        raise Http404("No such item.")
    return attempt, gold


@worker_page
@require_GET
def qualification_image(request: HttpRequest, token: str, index: int) -> HttpResponse:
    try:
        _, gold = _attempt_gold(token, index)
    except TokenRefused as exc:
        return _refused(request, exc)
    return _image(gold.media)


@worker_page
@require_GET
def qualification_overlay(request: HttpRequest, token: str, index: int) -> HttpResponse:
    try:
        attempt, gold = _attempt_gold(token, index)
    except TokenRefused as exc:
        return _refused(request, exc)
    label = selectors.unit_label(kind=attempt.test.kind, question=attempt.test.question, label=attempt.test.label)
    if gold.annotation is None or label is None:
        raise Http404("This item has no object to show.")
    return _overlay(gold.annotation, label.color)


# --- the task -------------------------------------------------------------------------------
def _choices(choices: list[str]) -> list[dict[str, Any]]:
    return [{"key": index + 1 if index < 9 else None, "text": choice} for index, choice in enumerate(choices)]


def _task_context(
    batch: CrowdBatch,
    *,
    image_url: str,
    overlay_url: str = "",
    preview: bool = False,
    error: str = "",
    posted: str = "",
    feedback: list[selectors.Feedback] | None = None,
) -> dict[str, Any]:
    mask = batch.kind == TaskKind.MASK
    return {
        "mask": mask,
        "question": batch.question,
        "choices": [] if mask else _choices(batch.question.choices),
        "label": selectors.unit_label(kind=batch.kind, question=batch.question, label=batch.label),
        "image_url": image_url,
        "overlay_url": overlay_url,
        "preview": preview,
        "error": error,
        "posted": posted,
        "feedback": feedback or [],
    }


def _preview_context(batch: CrowdBatch) -> dict[str, Any]:
    kwargs = {"public_id": batch.public_id}
    overlay_url = reverse("crowd_preview_overlay", kwargs=kwargs) if batch.object_units else ""
    return _task_context(
        batch, image_url=reverse("crowd_preview_image", kwargs=kwargs), overlay_url=overlay_url, preview=True
    )


def _assignment_page(token: str, assignment: CrowdAssignment, **extra: Any) -> dict[str, Any]:
    batch = assignment.batch
    overlay_url = reverse("crowd_task_overlay", kwargs={"token": token}) if batch.object_units else ""
    feedback = selectors.worker_feedback(worker=assignment.worker) if selectors.visit_is_new(assignment) else []
    return _task_context(
        batch,
        image_url=reverse("crowd_task_image", kwargs={"token": token}),
        overlay_url=overlay_url,
        feedback=feedback,
        **extra,
    )


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
    error, posted = "", ""
    if request.method == "POST":
        mask = request.POST.get("mask", "")
        try:
            assignment = services.assignment_submit(
                assignment=assignment, answer=request.POST.get("answer", ""), mask=mask
            )
        except ValidationError as exc:
            if getattr(exc, "code", None) in ("expired", "submitted"):
                return _refused(request, TokenRefused(" ".join(exc.messages)))
            error = " ".join(exc.messages)
            posted = mask if len(mask) <= scoring.MAX_DRAWING_CHARS else ""
        else:
            return _next(request, batch, assignment.worker, selectors.assignment_visit_context(assignment))
    context = _assignment_page(token, assignment, error=error, posted=posted)
    return render(request, "crowd/task.html", context, status=400 if error else 200)


@worker_page
@require_GET
def task_image(request: HttpRequest, token: str) -> HttpResponse:
    try:
        assignment = assignment_from_token(token)
    except TokenRefused as exc:
        return _refused(request, exc)
    return _image(assignment.media)


@worker_page
@require_GET
def task_overlay(request: HttpRequest, token: str) -> HttpResponse:
    try:
        assignment = assignment_from_token(token)
    except TokenRefused as exc:
        return _refused(request, exc)
    label = selectors.unit_label(kind=assignment.batch.kind, question=assignment.batch.question, label=None)
    if assignment.annotation is None or label is None:
        raise Http404("This task has no object to show.")
    return _overlay(assignment.annotation, label.color)


# --- the MTurk preview ----------------------------------------------------------------------
def _example(public_id: str) -> tuple[CrowdBatch, selectors.ExampleUnit]:
    batch = _open_batch(public_id, Provider.MTURK)
    example = selectors.batch_example_unit(batch=batch)
    if example is None:
        raise Http404("No example item.")
    return batch, example


@worker_page
@require_GET
def preview_image(request: HttpRequest, public_id: str) -> HttpResponse:
    """The example item of an MTurk preview: the first regular (never a gold) unit of the batch."""
    _, example = _example(public_id)
    return _image(example.media)


@worker_page
@require_GET
def preview_overlay(request: HttpRequest, public_id: str) -> HttpResponse:
    """The example object's overlay of an MTurk preview (object batches only)."""
    batch, example = _example(public_id)
    if example.annotation is None:
        raise Http404("This batch has no objects to show.")
    return _overlay(example.annotation, batch.question.label.color)


# --- pictures -------------------------------------------------------------------------------
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


def _outline(mask: np.ndarray, thickness: int) -> np.ndarray:
    """The pixels of ``mask`` within ``thickness`` pixels of its edge (or of the picture's edge)."""
    inner = mask.copy()
    for _ in range(thickness):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        shrunk[[0, -1], :] = False
        shrunk[:, [0, -1]] = False
        inner = shrunk
    return mask & ~inner


def overlay_png(rle: dict, colour: str) -> bytes:
    """A PNG the size of the picture: transparent, the mask's pixels in ``colour`` (half see-through)
    with an opaque outline about 0.3 % of the picture's longer side thick."""
    mask = mask_decode(rle)
    height, width = mask.shape
    index = np.zeros((height, width), dtype=np.uint8)
    index[mask] = 1
    index[_outline(mask, max(1, round(max(height, width) / 300)))] = 2
    value = int(colour.lstrip("#"), 16)
    rgb = [(value >> 16) & 255, (value >> 8) & 255, value & 255]
    picture = Image.frombytes("P", (width, height), index.tobytes())
    picture.putpalette([0, 0, 0, *rgb, *rgb])
    out = io.BytesIO()
    picture.save(out, format="PNG", transparency=bytes([0, OVERLAY_FILL_ALPHA, 255]))
    return out.getvalue()


def _overlay(annotation: Annotation, colour: str) -> HttpResponse:
    try:
        data = overlay_png(annotation.rle, colour)
    except ValidationError:
        raise Http404("The object has no usable mask.") from None
    response = HttpResponse(data, content_type="image/png")
    response["X-Content-Type-Options"] = "nosniff"
    return response
