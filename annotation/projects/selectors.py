"""Reads for the project pages: progress and objects per label for a list of projects."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Count

from annotation.models import Annotation, Project


def objects_per_label_for(projects: Iterable[Project]) -> dict[int, list[dict]]:
    """{project id: [{"name", "color", "objects"}, …]} for every label with objects, in one query."""
    ids = [project.pk for project in projects]
    rows = (
        Annotation.objects.filter(label__project_id__in=ids)
        .values("label__project_id", "label__name", "label__color", "label__order")
        .annotate(objects=Count("id"))
        .order_by("label__project_id", "label__order", "label__name")
    )
    result: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        result[row["label__project_id"]].append(
            {"name": row["label__name"], "color": row["label__color"], "objects": row["objects"]}
        )
    return result
