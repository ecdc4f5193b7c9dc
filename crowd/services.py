"""Writes of the crowd flow: a worker's arrival, their qualification attempts, the hand-out of
assignments (k per item, hidden gold mixed in) and the submission of answers, with the automatic
block on poor hidden-gold accuracy.

Everything here is reached from a worker's entry URL or signed token, never from a member's request:
the rows a function touches are the ones the batch, worker or token already pins down.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import MediaItem
from crowd.models import (
    CrowdAssignment,
    CrowdBatch,
    CrowdWorker,
    GoldItem,
    QualificationAttempt,
    QualificationTest,
    new_nonce,
)

# Gold accuracy is judged over this many of a worker's latest gold answers, once they have given
# at least BLOCK_MIN_GOLD of them.
BLOCK_WINDOW = 10
BLOCK_MIN_GOLD = 3
# Concurrent hand-outs may both see an item one short of k; the loser of that race tries again.
HANDOUT_TRIES = 5

_random = secrets.SystemRandom()


def _draw() -> float:
    """A uniform draw in [0, 1) deciding whether the next item is hidden gold (tests replace it)."""
    return _random.random()


# --- workers --------------------------------------------------------------------------------
def worker_enter(*, batch: CrowdBatch, external_id: str) -> CrowdWorker:
    """The batch's organisation's worker with this provider id, created on their first visit."""
    external_id = external_id.strip()
    if not external_id or len(external_id) > 100:
        raise ValidationError("The link is missing the worker id.")
    org_id = batch.project.organization_id
    try:
        with transaction.atomic():
            worker, _ = CrowdWorker.objects.get_or_create(
                organization_id=org_id, provider=batch.provider, external_id=external_id
            )
    except IntegrityError:  # two first visits at once: the other one created the row
        worker = CrowdWorker.objects.get(organization_id=org_id, provider=batch.provider, external_id=external_id)
    return worker


def worker_gold_accuracy(*, worker: CrowdWorker) -> tuple[int, float | None]:
    """How many hidden-gold answers the worker has given, and their accuracy over the latest ten."""
    answered = CrowdAssignment.objects.filter(worker=worker, is_gold=True, gold_correct__isnull=False)
    total = answered.count()
    latest = list(answered.order_by("-submitted_at", "-id").values_list("gold_correct", flat=True)[:BLOCK_WINDOW])
    return total, (sum(latest) / len(latest) if latest else None)


def _worker_block_check(worker: CrowdWorker) -> None:
    total, accuracy = worker_gold_accuracy(worker=worker)
    threshold = settings.CROWD_BLOCK_ACCURACY_PERCENT / 100
    if total >= BLOCK_MIN_GOLD and accuracy is not None and accuracy < threshold:
        worker.blocked = True
        worker.block_reason = (
            f"Accuracy on control items {accuracy:.0%} over the last {min(total, BLOCK_WINDOW)} "
            f"(below {threshold:.0%})."
        )
        worker.save(update_fields=["blocked", "block_reason"])


# --- qualification --------------------------------------------------------------------------
@dataclass(frozen=True)
class Qualification:
    """Where a worker stands with a project's test: ``passed``, ``attempt`` (take or go on with
    ``attempt``) or ``wait`` (failed; may retake at ``retake_at``)."""

    state: str
    attempt: QualificationAttempt | None = None
    retake_at: datetime | None = None


def qualification_begin(*, worker: CrowdWorker, batch: CrowdBatch, context: dict[str, str]) -> Qualification:
    test: QualificationTest | None = QualificationTest.objects.filter(project=batch.project_id).first()
    if test is None:
        return Qualification("passed")
    attempts = QualificationAttempt.objects.filter(worker=worker, test=test)
    if attempts.filter(passed=True).exists():
        return Qualification("passed")
    open_attempt = attempts.filter(finished_at__isnull=True).first()
    if open_attempt is not None:
        return Qualification("attempt", attempt=open_attempt)
    last = attempts.filter(finished_at__isnull=False).order_by("-finished_at").first()
    if last is not None:
        retake_at = last.finished_at + timedelta(hours=test.retake_delay_hours)
        if timezone.now() < retake_at:
            return Qualification("wait", retake_at=retake_at)
    gold = list(
        GoldItem.objects.filter(
            project=batch.project_id, question=test.question_id, purpose=GoldItem.Purpose.QUALIFICATION
        ).values_list("pk", flat=True)
    )
    if not gold:
        raise ValidationError("The qualification test has no items yet.")
    items = _random.sample(gold, min(test.item_count, len(gold)))
    attempt = QualificationAttempt.objects.create(worker=worker, test=test, batch=batch, items=items, context=context)
    return Qualification("attempt", attempt=attempt)


def qualification_gold(attempt: QualificationAttempt) -> list[GoldItem]:
    """The attempt's gold items in the order shown."""
    by_id = GoldItem.objects.select_related("media").in_bulk(attempt.items)
    return [by_id[pk] for pk in attempt.items if pk in by_id]


@transaction.atomic
def qualification_submit(*, attempt: QualificationAttempt, answers: list[str]) -> QualificationAttempt:
    """Score the answers on the server (exact choice) against the pass mark; the token is used up."""
    attempt = (
        QualificationAttempt.objects.select_for_update(of=("self",)).select_related("test__question").get(pk=attempt.pk)
    )
    if attempt.finished_at is not None:
        raise ValidationError("This test has already been submitted.")
    gold = qualification_gold(attempt)
    choices = attempt.test.question.choices
    if len(answers) != len(gold) or any(answer not in choices for answer in answers):
        raise ValidationError("Answer every item with one of the choices.")
    correct = sum(1 for item, answer in zip(gold, answers, strict=True) if item.answer == answer)
    attempt.answers = answers
    attempt.score = correct / len(gold) if gold else 0.0
    attempt.passed = attempt.score >= attempt.test.pass_mark
    attempt.finished_at = timezone.now()
    attempt.token_nonce = new_nonce()
    attempt.save(update_fields=["answers", "score", "passed", "finished_at", "token_nonce"])
    return attempt


# --- assignments ----------------------------------------------------------------------------
def visit_filter(batch: CrowdBatch, context: dict[str, str]) -> dict[str, str]:
    """The assignments of one visit: one MTurk assignment, or one study-link session."""
    if batch.provider == "mturk":
        return {"assignment_id": context.get("assignment_id", "")}
    return {"session_id": context.get("session_id", "")}


def assignment_next(*, batch: CrowdBatch, worker: CrowdWorker, context: dict[str, str]) -> CrowdAssignment | None:
    """The worker's open assignment of this visit, or a new one; None when the visit is over
    (MTurk: one item per HIT assignment; link: ``items_per_session``) or no item is left."""
    if worker.blocked or batch.state != CrowdBatch.State.OPEN:
        return None
    visit = CrowdAssignment.objects.filter(batch=batch, worker=worker, **visit_filter(batch, context))
    current = visit.filter(state=CrowdAssignment.State.ASSIGNED).first()
    if current is not None:
        return current
    limit = 1 if batch.provider == "mturk" else batch.items_per_session
    if visit.count() >= limit:
        return None
    fields = {
        "assignment_id": context.get("assignment_id", ""),
        "hit_id": context.get("hit_id", ""),
        "turk_submit_to": context.get("turk_submit_to", ""),
        "study_id": context.get("study_id", ""),
        "session_id": context.get("session_id", ""),
    }
    for _ in range(HANDOUT_TRIES):
        try:
            with transaction.atomic():
                media, is_gold = _pick(batch, worker)
                if media is None:
                    return None
                return CrowdAssignment.objects.create(
                    batch=batch, worker=worker, media=media, is_gold=is_gold, **fields
                )
        except _Raced:
            continue
        except IntegrityError:
            # The same worker's second request took this item (or this MTurk assignment) first.
            current = visit.filter(state=CrowdAssignment.State.ASSIGNED).first()
            if current is not None:
                return current
    return None


class _Raced(Exception):
    pass


def _pick(batch: CrowdBatch, worker: CrowdWorker) -> tuple[MediaItem | None, bool]:
    """An item for the worker, under a row lock: hidden gold at ``gold_rate``, else the regular
    item with the fewest assignments below k. Runs inside the caller's transaction."""
    seen = CrowdAssignment.objects.filter(batch=batch, worker=worker).values("media")
    gold = GoldItem.objects.filter(project=batch.project_id, question=batch.question_id)
    if batch.gold_rate > 0 and _draw() < batch.gold_rate:
        hidden = list(
            gold.filter(purpose=GoldItem.Purpose.HIDDEN).exclude(media__in=seen).values_list("media", flat=True)
        )
        if hidden and _regular(batch, worker, gold, seen).exists():
            # Gold only while regular work is left: a visit never consists of gold alone.
            return MediaItem.objects.get(pk=_random.choice(hidden)), True
    # skip_locked: two workers asking at once lock different items instead of queueing on one.
    media = _regular(batch, worker, gold, seen).select_for_update(skip_locked=True, of=("self",)).first()
    if media is None:
        return None, False
    # The count above was read before the lock; count again now that the item is ours.
    if CrowdAssignment.objects.filter(batch=batch, media=media).count() >= batch.assignments_per_item:
        raise _Raced
    return media, False


def _regular(batch: CrowdBatch, worker: CrowdWorker, gold: QuerySet, seen: QuerySet) -> QuerySet:
    taken = (
        CrowdAssignment.objects.filter(batch=batch, media=OuterRef("pk"))
        .order_by()
        .values("media")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        MediaItem.objects.filter(project=batch.project_id, kind=MediaItem.Kind.IMAGE)
        .exclude(pk__in=gold.values("media"))
        .exclude(pk__in=seen)
        .annotate(taken=Coalesce(Subquery(taken, output_field=IntegerField()), 0))
        .filter(taken__lt=batch.assignments_per_item)
        .order_by("taken", "pk")
    )


@transaction.atomic
def assignment_submit(*, assignment: CrowdAssignment, answer: str) -> CrowdAssignment:
    """Record the answer (one of the question's choices); the token is used up. A hidden-gold
    answer is scored and may block the worker."""
    assignment = (
        CrowdAssignment.objects.select_for_update(of=("self",))
        .select_related("batch__question", "worker")
        .get(pk=assignment.pk)
    )
    if assignment.state != CrowdAssignment.State.ASSIGNED:
        raise ValidationError("This item has already been submitted.")
    if answer not in assignment.batch.question.choices:
        raise ValidationError("Choose one of the answers.")
    assignment.answer = answer
    assignment.state = CrowdAssignment.State.SUBMITTED
    assignment.submitted_at = timezone.now()
    assignment.token_nonce = new_nonce()
    fields = ["answer", "state", "submitted_at", "token_nonce"]
    if assignment.is_gold:
        expected = (
            GoldItem.objects.filter(media=assignment.media_id, question=assignment.batch.question_id)
            .order_by("purpose")  # "hidden" before "qualification"
            .values_list("answer", flat=True)
            .first()
        )
        assignment.gold_correct = answer == expected
        fields.append("gold_correct")
    assignment.save(update_fields=fields)
    if assignment.is_gold:
        _worker_block_check(assignment.worker)
    return assignment
