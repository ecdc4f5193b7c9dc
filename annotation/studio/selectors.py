"""Reads for the studio page: labels with their per-object questions, and what the smart tool can do."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from annotation.models import Label, Project, Question
from annotation.selectors import label_list
from inference import registry


def studio_labels(project: Project) -> QuerySet[Label]:
    """The project's labels in key order (1…9), each with its per-object questions in order; a fixed
    number of queries however many labels and questions there are."""
    questions = Question.objects.order_by("order", "id")
    return label_list(project).order_by("order", "name").prefetch_related(Prefetch("questions", queryset=questions))


def smart_tool(project: Project) -> dict[str, Any]:
    """What the studio's smart tool (clicks and boxes sent to a segmentation model) offers here: the
    SAM 2 models whose checkpoints are present, then the classical fallback, which always works.

    The default is a trained SAM 2 model when there is one; otherwise the fallback, since a model
    with random weights (``sam2_random_checkpoint``) draws noise and is only there to be picked on
    purpose. Whether a model is loaded is known only in inline mode: in worker mode the models live
    in the ``inference_worker`` processes."""
    models = registry.choices()
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
    default = trained[0] if trained else registry.FALLBACK_KEY
    if trained:
        message = ""
    elif len(models) > 1:
        message = "Only SAM 2 checkpoints with random weights are here: the classical segmenter is picked."
    else:
        message = "No SAM 2 checkpoint is installed: the smart tool uses the classical segmenter (GrabCut)."
    return {"available": True, "models": models, "default": default, "message": message}
