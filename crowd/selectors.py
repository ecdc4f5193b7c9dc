"""Reads of the crowd machinery."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from annotation.models import MediaItem
from crowd.models import CrowdAssignment, CrowdBatch, CrowdWorker, GoldItem, Provider
from crowd.services import visit_filter


def batch_entry_urls(batch: CrowdBatch) -> list[tuple[str, str]]:
    """The batch's worker entry URL as ``(kind, absolute url)``; none for the internal provider,
    whose members work through their tasks. The provider appends its own parameters (Prolific's
    ``PROLIFIC_PID`` …, MTurk's ``assignmentId`` …)."""
    if batch.provider == Provider.LINK:
        path = reverse("crowd_link_entry", kwargs={"public_id": batch.public_id})
        query = "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
        return [("link", f"{settings.SITE_URL}{path}{query}")]
    if batch.provider == Provider.MTURK:
        path = reverse("crowd_mturk_entry", kwargs={"public_id": batch.public_id})
        return [("mturk", f"{settings.SITE_URL}{path}")]
    return []


def visit_last_submitted(*, batch: CrowdBatch, worker: CrowdWorker, context: dict[str, str]) -> CrowdAssignment | None:
    """The latest answer the worker submitted in this visit (MTurk assignment or study session)."""
    return (
        CrowdAssignment.objects.filter(
            batch=batch, worker=worker, state=CrowdAssignment.State.SUBMITTED, **visit_filter(batch, context)
        )
        .order_by("-submitted_at", "-id")
        .first()
    )


def batch_example_item(*, batch: CrowdBatch) -> MediaItem | None:
    """What an MTurk preview shows: the batch's first regular item, never a gold one."""
    gold = GoldItem.objects.filter(project=batch.project_id).values("media")
    return (
        MediaItem.objects.filter(project=batch.project_id, kind=MediaItem.Kind.IMAGE)
        .exclude(pk__in=gold)
        .order_by("pk")
        .first()
    )
