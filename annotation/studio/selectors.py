"""Reads for the studio page: labels with their per-object questions, what the smart tool can do,
and, on a video, what the timeline player needs (frames, frame rate, frame and preview URLs)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.urls import reverse

from annotation.models import Label, MediaItem, Project, Question
from annotation.selectors import label_list
from inference import registry


def studio_labels(project: Project) -> QuerySet[Label]:
    """The project's labels in key order (1…9), each with its per-object questions in order; a fixed
    number of queries however many labels and questions there are."""
    questions = Question.objects.order_by("order", "id")
    return label_list(project).order_by("order", "name").prefetch_related(Prefetch("questions", queryset=questions))


# The video trackers' fallback (``inference.video.trackers.FLOW_KEY``, not imported here: that
# module loads torch): clicks cut out by GrabCut, masks carried along the optical flow.
FLOW_KEY = "optical-flow"
FLOW_CHOICE = {"key": FLOW_KEY, "name": "Optical flow (fallback)", "untrained": False, "loaded": True, "fallback": True}
FRAME_SENTINEL = 987654321  # reversed into a URL, then replaced by ``{n}``


def smart_tool(project: Project, *, video: bool = False) -> dict[str, Any]:
    """What the studio's smart tool (clicks and boxes sent to a segmentation model) offers here: the
    SAM 2 models whose checkpoints are present, then the classical fallback, which always works.
    On a video the fallback is the optical-flow tracker (its clicks are GrabCut's too), since a
    video prompt goes to a tracker that can carry the mask on through the frames.

    The default is a trained SAM 2 model when there is one; otherwise the fallback, since a model
    with random weights (``sam2_random_checkpoint``) draws noise and is only there to be picked on
    purpose. Whether a model is loaded is known only in inline mode: in worker mode the models live
    in the ``inference_worker`` processes."""
    models = registry.choices()
    if video:
        models = [model for model in models if not model["fallback"]] + [dict(FLOW_CHOICE)]
    inline = settings.INFERENCE_MODE == "inline"
    for model in models:
        if not inline and not model["fallback"]:
            model["loaded"] = None
        notes = []
        if model["untrained"]:
            notes.append("random weights: its masks are noise")
        elif model["fallback"]:
            notes.append("no SAM 2 weights needed")
        if model["loaded"]:
            notes.append("loaded")
        model["note"] = ", ".join(notes)
    trained = [model["key"] for model in models if not model["fallback"] and not model["untrained"]]
    fallback_key = FLOW_KEY if video else registry.FALLBACK_KEY
    default = trained[0] if trained else fallback_key
    if trained:
        message = ""
    elif len(models) > 1:
        picked = "the optical-flow fallback" if video else "the classical segmenter"
        message = f"Only SAM 2 checkpoints with random weights are here: {picked} is picked."
    elif video:
        message = "No SAM 2 checkpoint is installed: clicks use GrabCut and propagation the optical flow."
    else:
        message = "No SAM 2 checkpoint is installed: the smart tool uses the classical segmenter (GrabCut)."
    return {"available": True, "models": models, "default": default, "message": message}


def _frame_pattern(name: str, org_slug: str, video_id: int) -> str:
    url = reverse(name, kwargs={"org_slug": org_slug, "video_id": video_id, "frame": FRAME_SENTINEL})
    return url.replace(str(FRAME_SENTINEL), "{n}")


def video_timeline(item: MediaItem, org_slug: str) -> dict[str, Any] | None:
    """What the studio's timeline player needs for a video item (None for an image): its state,
    frame count and rate, and the URL patterns of its frames (``<n>.jpg``) and of their previews
    with the masks drawn on (``annotation.video_previews``), ``{n}`` standing for the frame."""
    if item.kind != MediaItem.Kind.VIDEO:
        return None
    ready = item.state == MediaItem.State.READY and bool(item.frames_prefix)
    return {
        "ready": ready,
        "state": item.state,
        "stateDetail": item.state_detail,
        "frameCount": item.frame_count or 0,
        "fps": item.fps or 0,
        "frameUrl": _frame_pattern("media_frame", org_slug, item.pk),
        "previewUrl": _frame_pattern("media_frame_preview", org_slug, item.pk),
    }
