"""Reads of the crowd machinery: a batch's or test's gold, the assignments of one visit, the example
unit an MTurk preview shows, the feedback a returning worker sees, and the batch's entry URLs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from annotation.models import Annotation, Label, MediaItem, Question
from crowd.models import CrowdAssignment, CrowdBatch, CrowdWorker, GoldItem, Provider, QualificationTest, TaskKind

HIDDEN_PURPOSES = (GoldItem.Purpose.HIDDEN, GoldItem.Purpose.BOTH)
QUALIFICATION_PURPOSES = (GoldItem.Purpose.QUALIFICATION, GoldItem.Purpose.BOTH)
# A returning worker sees the reasons of their rejections of this many recent days, at most this many.
FEEDBACK_DAYS = 30
FEEDBACK_LIMIT = 5


def _gold_of(*, project_id: int, kind: str, question: Question | None, label_id: int | None) -> QuerySet[GoldItem]:
    gold = GoldItem.objects.filter(project=project_id)
    if kind == TaskKind.MASK:
        return gold.filter(question__isnull=True, label=label_id)
    if question is not None and question.label_id is not None:
        return gold.filter(question=question, annotation__isnull=False)
    return gold.filter(question=question, annotation__isnull=True)


def batch_gold(batch: CrowdBatch) -> QuerySet[GoldItem]:
    """The gold items that fit the batch's units (any purpose): answers about its items or
    objects, or masks of its label."""
    return _gold_of(project_id=batch.project_id, kind=batch.kind, question=batch.question, label_id=batch.label_id)


def qualification_test_gold(test: QualificationTest) -> QuerySet[GoldItem]:
    """The gold items that fit the test (any purpose)."""
    return _gold_of(project_id=test.project_id, kind=test.kind, question=test.question, label_id=test.label_id)


def unit_label(*, kind: str, question: Question | None, label: Label | None) -> Label | None:
    """The label a task shows by name and colour: the mask's, or that of the objects asked about."""
    if kind == TaskKind.MASK:
        return label
    return question.label if question is not None and question.label_id is not None else None


def visit_filter(batch: CrowdBatch, context: dict[str, str]) -> dict[str, str]:
    """The assignments of one visit: one MTurk assignment, or one study-link session."""
    if batch.provider == Provider.MTURK:
        return {"assignment_id": context.get("assignment_id", "")}
    return {"session_id": context.get("session_id", "")}


def assignment_visit_context(assignment: CrowdAssignment) -> dict[str, str]:
    """The provider parameters of the visit an assignment was handed out in."""
    return {
        "assignment_id": assignment.assignment_id,
        "hit_id": assignment.hit_id,
        "turk_submit_to": assignment.turk_submit_to,
        "study_id": assignment.study_id,
        "session_id": assignment.session_id,
    }


def visit_is_new(assignment: CrowdAssignment) -> bool:
    """Whether this is the first assignment of its visit (the first page the worker sees)."""
    visit = visit_filter(assignment.batch, assignment_visit_context(assignment))
    return not CrowdAssignment.objects.filter(
        batch=assignment.batch_id, worker=assignment.worker_id, pk__lt=assignment.pk, **visit
    ).exists()


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


@dataclass(frozen=True)
class ExampleUnit:
    media: MediaItem
    annotation: Annotation | None


def batch_example_unit(*, batch: CrowdBatch) -> ExampleUnit | None:
    """What an MTurk preview shows: the batch's first regular unit (an item, or an object on its
    item), never a gold one."""
    gold = batch_gold(batch)
    if batch.object_units:
        annotation = (
            Annotation.objects.select_related("media")
            .filter(
                label=batch.question.label_id,
                proposed=False,
                media__project=batch.project_id,
                media__kind=MediaItem.Kind.IMAGE,
            )
            .exclude(pk__in=gold.values("annotation"))
            .order_by("pk")
            .first()
        )
        return None if annotation is None else ExampleUnit(annotation.media, annotation)
    media = (
        MediaItem.objects.filter(project=batch.project_id, kind=MediaItem.Kind.IMAGE)
        .exclude(pk__in=GoldItem.objects.filter(project=batch.project_id).values("media"))
        .order_by("pk")
        .first()
    )
    return None if media is None else ExampleUnit(media, None)


@dataclass(frozen=True)
class Feedback:
    submitted_at: datetime | None
    reason: str


def worker_feedback(*, worker: CrowdWorker) -> list[Feedback]:
    """The reasons the worker's recent answers were rejected, newest first. Answers to hidden gold
    are left out: a reason written about one could tell the worker which items are control items."""
    since = timezone.now() - timedelta(days=FEEDBACK_DAYS)
    rows = (
        CrowdAssignment.objects.filter(
            worker=worker, state=CrowdAssignment.State.REJECTED, is_gold=False, reviewed_at__gte=since
        )
        .exclude(review_reason="")
        .order_by("-reviewed_at", "-id")
        .values_list("submitted_at", "review_reason")[:FEEDBACK_LIMIT]
    )
    return [Feedback(submitted_at, reason) for submitted_at, reason in rows]
