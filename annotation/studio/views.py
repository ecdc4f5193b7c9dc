"""The studio page: one item of a task on a canvas, with the labels and their guideline notes, the
object list, per-object and per-item questions, and < > >> navigation through the task.

The page is rendered here; the canvas module (static/js/studio/) reads and writes the item's
annotations through the studio websocket when it connects, else through the REST API. Enter there
posts the per-item answers back to this view, which marks the item done and moves on. On a video
the page adds its timeline player: frames, playback, tracks and propagation (static/js/studio/
timeline.js and the modules it loads)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from annotation.models import MediaItem, Task
from annotation.selectors import item_questions
from annotation.studio.selectors import smart_tool, studio_labels, video_timeline
from annotation.tasks import selectors as task_selectors
from annotation.tasks.views import item_save_and_go_on
from platform_core.tenancy import member_required

LABEL_KEYS = 9  # labels 1…9 have a key


def _socket_path(org_slug: str, media_id: int) -> str | None:
    """The item's studio websocket, when a consumer serves it (else the page saves over REST at once,
    without a handshake that cannot succeed)."""
    from platform_core.routing import websocket_urlpatterns

    path = f"ws/o/{org_slug}/studio/{media_id}/"
    if any(pattern.pattern.match(path) for pattern in websocket_urlpatterns):
        return "/" + path
    return None


def _studio_url(org_slug: str, task_id: int, media_id: int | None) -> str | None:
    if media_id is None:
        return None
    return reverse("studio", kwargs={"org_slug": org_slug, "task_id": task_id, "media_id": media_id})


def _page_data(request: HttpRequest, task: Task, item: MediaItem, labels: list, nav: dict) -> dict[str, Any]:
    """What the canvas module needs, handed over in a json_script element (the CSP allows no inline script)."""
    slug = request.tenant.org.slug
    video = video_timeline(item, slug)
    return {
        "org": slug,
        "taskId": task.pk,
        "mediaId": item.pk,
        "width": item.width,
        "height": item.height,
        "imageUrl": reverse("media_file", kwargs={"org_slug": slug, "media_id": item.pk}),
        "annotationsUrl": reverse("api_annotation_list", kwargs={"org_slug": slug, "media_id": item.pk}),
        "socketPath": _socket_path(slug, item.pk),
        "labels": [
            {
                "id": label.pk,
                "name": label.name,
                "color": label.color,
                "kind": label.kind,
                "key": index + 1 if index < LABEL_KEYS else None,
                "questions": [
                    {"id": q.pk, "text": q.text, "choices": q.choices, "default": q.default, "required": q.required}
                    for q in label.questions.all()
                ],
            }
            for index, label in enumerate(labels)
        ],
        "nav": {key: _studio_url(slug, task.pk, nav[key]) for key in ("previous", "next", "next_open")},
        "smart": smart_tool(task.project, video=video is not None),
        "video": video,
    }


@member_required
@require_http_methods(["GET", "POST"])
def studio(request: HttpRequest, task_id: int, media_id: int) -> HttpResponse:
    """GET: the studio on one item of a task. POST: save the per-item answers, mark the item done and
    go on to the next unannotated item (Enter in the studio)."""
    task, item = task_selectors.task_item_get(request.tenant, task_id, media_id)
    questions = list(item_questions(task.project))
    error = None
    if request.method == "POST":
        response, error = item_save_and_go_on(request, task, item, questions, page="studio")
        if response is not None:
            return response
    labels = list(studio_labels(task.project))
    nav = task_selectors.task_neighbours(task, item)
    context = {
        "task": task,
        "project": task.project,
        "item": item,
        "labels": labels,
        "questions": [(q, item.answers.get(str(q.pk), q.default)) for q in questions],
        "nav": nav,
        "total": task.items.count(),
        "done": task.items.filter(done_at__isnull=False).count(),
        "error": error,
        "studio_data": _page_data(request, task, item, labels, nav),
    }
    return render(request, "annotation/studio.html", context, status=400 if error else 200)
