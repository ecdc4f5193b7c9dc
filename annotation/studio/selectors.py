"""Reads for the studio page: labels with their per-object questions, and what the smart tool can do."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from annotation.models import Label, Project, Question
from annotation.selectors import label_list


def studio_labels(project: Project) -> QuerySet[Label]:
    """The project's labels in key order (1…9), each with its per-object questions in order; a fixed
    number of queries however many labels and questions there are."""
    questions = Question.objects.order_by("order", "id")
    return label_list(project).order_by("order", "name").prefetch_related(Prefetch("questions", queryset=questions))


def smart_tool(project: Project) -> dict[str, Any]:
    """What the studio's smart tool (clicks and boxes sent to a segmentation model) can do here.

    No model serves the studio yet: the tool says so plainly. The inference work fills this in (the
    models available to the project, and the websocket message that carries the prompts)."""
    return {"available": False, "message": "No segmentation model is available here yet: draw with the manual tools."}
