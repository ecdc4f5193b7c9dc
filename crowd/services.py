"""Writes of the crowd flow: a worker's arrival, their qualification attempts, the hand-out of
assignments (k per unit, hidden gold mixed in, expiry) and the submission of answers and masks, with
the automatic block on poor hidden-gold accuracy.

A unit of work is an item (a question about the whole item, or a mask to draw on it) or, when the
batch's question is about a label's objects (``CrowdBatch.object_units``), one object: an annotation
of that label, shown to the worker as its mask over the item.

Expiry: an assignment is handed out for ``batch.assignment_minutes``. Past that, while unanswered,
it no longer counts toward the unit's k and its token is refused. The row itself stays (so its link
can say it expired) until its worker asks for work in that batch again: then the worker's expired
rows are deleted, not reused. They hold no answer, so nothing is lost, and deleting them frees
the unique (batch, worker, unit) and MTurk assignment constraints for a fresh hand-out, which may
give the same unit again.

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
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import Annotation, MediaItem
from crowd import scoring
from crowd.models import (
    CrowdAssignment,
    CrowdBatch,
    CrowdWorker,
    GoldItem,
    QualificationAttempt,
    QualificationTest,
    ReviewAction,
    TaskKind,
    new_nonce,
)
from crowd.mturk_jobs import enqueue_qualification_score
from crowd.selectors import HIDDEN_PURPOSES, QUALIFICATION_PURPOSES, batch_gold, qualification_test_gold, visit_filter
from crowd.tokens import EXPIRED_MESSAGE

__all__ = [
    "BLOCK_MIN_GOLD",
    "BLOCK_WINDOW",
    "Qualification",
    "assignment_next",
    "assignment_submit",
    "expired_q",
    "qualification_begin",
    "qualification_gold",
    "qualification_submit",
    "visit_filter",
    "worker_enter",
    "worker_gold_accuracy",
]

# Gold accuracy is judged over this many of a worker's latest gold answers, once they have given
# at least BLOCK_MIN_GOLD of them.
BLOCK_WINDOW = 10
BLOCK_MIN_GOLD = 3
# Concurrent hand-outs may both see a unit one short of k; the loser of that race tries again.
HANDOUT_TRIES = 5

_random = secrets.SystemRandom()


def _draw() -> float:
    """A uniform draw in [0, 1) deciding whether the next unit is hidden gold (tests replace it)."""
    return _random.random()


def expired_q(now: datetime | None = None) -> Q:
    """Assignments handed out and left unanswered past their time: they hold no unit any more."""
    return Q(state=CrowdAssignment.State.ASSIGNED, expires_at__lte=now or timezone.now())


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
        # In the audit like a reviewer's block, with no one as its actor.
        ReviewAction.objects.create(
            organization_id=worker.organization_id,
            kind=ReviewAction.Kind.BLOCK,
            worker=worker,
            reason=worker.block_reason,
        )


# --- qualification --------------------------------------------------------------------------
@dataclass(frozen=True)
class Qualification:
    """Where a worker stands with a project's test: ``passed``, ``attempt`` (take or go on with
    ``attempt``) or ``wait`` (failed; may retake at ``retake_at``)."""

    state: str
    attempt: QualificationAttempt | None = None
    retake_at: datetime | None = None


def qualification_begin(*, worker: CrowdWorker, batch: CrowdBatch, context: dict[str, str]) -> Qualification:
    test = QualificationTest.objects.select_related("question").filter(project=batch.project_id).first()
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
    gold = list(qualification_test_gold(test).filter(purpose__in=QUALIFICATION_PURPOSES).values_list("pk", flat=True))
    if not gold:
        raise ValidationError("The qualification test has no items yet.")
    items = _random.sample(gold, min(test.item_count, len(gold)))
    attempt = QualificationAttempt.objects.create(worker=worker, test=test, batch=batch, items=items, context=context)
    return Qualification("attempt", attempt=attempt)


def qualification_gold(attempt: QualificationAttempt) -> list[GoldItem]:
    """The attempt's gold items in the order shown."""
    by_id = GoldItem.objects.select_related("media", "annotation").in_bulk(attempt.items)
    return [by_id[pk] for pk in attempt.items if pk in by_id]


def _choices_right(test: QualificationTest, gold: list[GoldItem], answers: list[str]) -> tuple[list, float]:
    choices = test.question.choices
    if len(answers) != len(gold) or any(answer not in choices for answer in answers):
        raise ValidationError("Answer every item with one of the choices.")
    correct = sum(1 for item, answer in zip(gold, answers, strict=True) if item.answer == answer)
    return answers, correct / len(gold) if gold else 0.0


def _masks_right(test: QualificationTest, gold: list[GoldItem], answers: list[str]) -> tuple[list, float]:
    """Each picture's drawing as a mask, and the share of pictures whose IoU with the gold mask
    reaches the test's threshold (pictures whose gold mask cannot be compared are left out)."""
    if len(answers) != len(gold):
        raise ValidationError("Draw the outline on every picture.")
    masks = []
    for number, (item, raw) in enumerate(zip(gold, answers, strict=True), start=1):
        try:
            masks.append(scoring.mask_from_drawing(raw, height=item.media.height, width=item.media.width))
        except ValidationError as exc:
            raise ValidationError(f"Picture {number}: {' '.join(exc.messages)}", code=exc.code) from None
    scores = [scoring.mask_score(mask, item.rle) for mask, item in zip(masks, gold, strict=True)]
    scored = [score for score in scores if score is not None]
    right = sum(1 for score in scored if score >= test.iou_threshold)
    return masks, right / len(scored) if scored else 0.0


@transaction.atomic
def qualification_submit(*, attempt: QualificationAttempt, answers: list[str]) -> QualificationAttempt:
    """Score the answers on the server against the pass mark: choices exactly, drawings (mask
    tests) by IoU with the gold masks. The token is used up; bad input changes nothing."""
    attempt = (
        QualificationAttempt.objects.select_for_update(of=("self",))
        .select_related("test__question", "test__label")
        .get(pk=attempt.pk)
    )
    if attempt.finished_at is not None:
        raise ValidationError("This test has already been submitted.")
    gold = qualification_gold(attempt)
    score_answers = _masks_right if attempt.test.kind == TaskKind.MASK else _choices_right
    attempt.answers, attempt.score = score_answers(attempt.test, gold, answers)
    attempt.passed = attempt.score >= attempt.test.pass_mark
    attempt.finished_at = timezone.now()
    attempt.token_nonce = new_nonce()
    attempt.save(update_fields=["answers", "score", "passed", "finished_at", "token_nonce"])
    # A Mechanical Turk worker's score becomes their value of the project's qualification type.
    enqueue_qualification_score(attempt)
    return attempt


# --- hand-out -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Unit:
    media_id: int
    annotation_id: int | None
    is_gold: bool


class _Raced(Exception):
    pass


def _unit_field(batch: CrowdBatch) -> str:
    return "annotation" if batch.object_units else "media"


def assignment_next(*, batch: CrowdBatch, worker: CrowdWorker, context: dict[str, str]) -> CrowdAssignment | None:
    """The worker's open assignment of this visit, or a new one; None when the visit is over
    (MTurk: one unit per HIT assignment; link: ``items_per_session``) or no unit is left. The
    worker's expired assignments of the batch are dropped first."""
    if worker.blocked or batch.state != CrowdBatch.State.OPEN:
        return None
    CrowdAssignment.objects.filter(expired_q(), batch=batch, worker=worker).delete()
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
                unit = _pick(batch, worker)
                if unit is None:
                    return None
                return CrowdAssignment.objects.create(
                    batch=batch,
                    worker=worker,
                    media_id=unit.media_id,
                    annotation_id=unit.annotation_id,
                    is_gold=unit.is_gold,
                    expires_at=timezone.now() + timedelta(minutes=batch.assignment_minutes),
                    **fields,
                )
        except _Raced:
            continue
        except IntegrityError:
            # The same worker's second request took this unit (or this MTurk assignment) first.
            current = visit.filter(state=CrowdAssignment.State.ASSIGNED).first()
            if current is not None:
                return current
    return None


def _qualification_items_seen(worker: CrowdWorker, batch: CrowdBatch) -> set[int]:
    """Gold item ids the worker was shown in this project's qualification test: never hidden gold
    for them (they may remember the answers)."""
    seen: set[int] = set()
    for items in QualificationAttempt.objects.filter(worker=worker, test__project=batch.project_id).values_list(
        "items", flat=True
    ):
        seen.update(pk for pk in items if isinstance(pk, int))
    return seen


def _pick(batch: CrowdBatch, worker: CrowdWorker) -> _Unit | None:
    """A unit for the worker, under a row lock: hidden gold at ``gold_rate``, else the regular unit
    with the fewest live assignments below k. Runs inside the caller's transaction."""
    field = _unit_field(batch)
    seen = CrowdAssignment.objects.filter(batch=batch, worker=worker, **{f"{field}__isnull": False}).values(field)
    gold = batch_gold(batch)
    if batch.gold_rate > 0 and _draw() < batch.gold_rate:
        hidden = list(
            gold.filter(purpose__in=HIDDEN_PURPOSES)
            .exclude(**{f"{field}__in": seen})
            .exclude(pk__in=_qualification_items_seen(worker, batch))
            .values_list("media", "annotation")
        )
        if hidden and _regular(batch, gold, seen).exists():
            # Gold only while regular work is left: a visit never consists of gold alone.
            media_id, annotation_id = _random.choice(hidden)
            return _Unit(media_id, annotation_id, True)
    # skip_locked: two workers asking at once lock different units instead of queueing on one.
    unit = _regular(batch, gold, seen).select_for_update(skip_locked=True, of=("self",)).first()
    if unit is None:
        return None
    # The count above was read before the lock; count again now that the unit is ours.
    live = CrowdAssignment.objects.filter(batch=batch, **{field: unit}).exclude(expired_q())
    if live.count() >= batch.assignments_per_item:
        raise _Raced
    if batch.object_units:
        return _Unit(unit.media_id, unit.pk, False)
    return _Unit(unit.pk, None, False)


def _taken(batch: CrowdBatch, field: str) -> Subquery:
    """Per unit: its assignments in the batch that still hold it (answered, or not yet expired)."""
    counted = (
        CrowdAssignment.objects.filter(batch=batch, **{field: OuterRef("pk")})
        .exclude(expired_q())
        .order_by()
        .values(field)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _regular(batch: CrowdBatch, gold: QuerySet, seen: QuerySet) -> QuerySet:
    """The batch's regular units the worker has not had, below k, the least answered first."""
    if batch.object_units:
        units = Annotation.objects.filter(
            label=batch.question.label_id,
            proposed=False,
            media__project=batch.project_id,
            media__kind=MediaItem.Kind.IMAGE,
        ).exclude(pk__in=gold.values("annotation"))
    else:
        units = MediaItem.objects.filter(project=batch.project_id, kind=MediaItem.Kind.IMAGE).exclude(
            pk__in=gold.values("media")
        )
    return (
        units.exclude(pk__in=seen)
        .annotate(taken=_taken(batch, _unit_field(batch)))
        .filter(taken__lt=batch.assignments_per_item)
        .order_by("taken", "pk")
    )


# --- submission -----------------------------------------------------------------------------
def _lock_open(assignment: CrowdAssignment) -> CrowdAssignment:
    assignment = (
        CrowdAssignment.objects.select_for_update(of=("self",))
        .select_related("batch__question", "worker", "media")
        .get(pk=assignment.pk)
    )
    if assignment.state != CrowdAssignment.State.ASSIGNED:
        raise ValidationError("This item has already been submitted.", code="submitted")
    if assignment.expires_at is not None and assignment.expires_at <= timezone.now():
        raise ValidationError(EXPIRED_MESSAGE, code="expired")
    return assignment


def _record_answer(assignment: CrowdAssignment, answer: str) -> list[str]:
    if answer not in assignment.batch.question.choices:
        raise ValidationError("Choose one of the answers.", code="bad_answer")
    assignment.answer = answer
    if not assignment.is_gold:
        return ["answer"]
    expected = _unit_gold(assignment).values_list("answer", flat=True).first()
    assignment.gold_correct = answer == expected
    return ["answer", "gold_correct"]


def _record_mask(assignment: CrowdAssignment, drawing: str) -> list[str]:
    media = assignment.media
    assignment.answer_rle = scoring.mask_from_drawing(drawing, height=media.height, width=media.width)
    if not assignment.is_gold:
        return ["answer_rle"]
    gold_rle = _unit_gold(assignment).values_list("rle", flat=True).first()
    score = scoring.mask_score(assignment.answer_rle, gold_rle or {})
    assignment.gold_score = score
    assignment.gold_correct = None if score is None else score >= scoring.iou_threshold(assignment.batch.project_id)
    return ["answer_rle", "gold_score", "gold_correct"]


def _unit_gold(assignment: CrowdAssignment) -> QuerySet[GoldItem]:
    gold = batch_gold(assignment.batch)
    if assignment.annotation_id is not None:
        return gold.filter(annotation=assignment.annotation_id)
    return gold.filter(media=assignment.media_id)


@transaction.atomic
def assignment_submit(*, assignment: CrowdAssignment, answer: str = "", mask: str = "") -> CrowdAssignment:
    """Record the answer (one of the question's choices) or, for a mask batch, the mask drawn
    (``mask``: the drawing the task page posts, see ``crowd.scoring``); the token is used up. A
    hidden-gold answer is scored and may block the worker. Bad input and expired assignments are
    refused with ValidationError and change nothing."""
    assignment = _lock_open(assignment)
    if assignment.batch.kind == TaskKind.MASK:
        fields = _record_mask(assignment, mask)
    else:
        fields = _record_answer(assignment, answer)
    assignment.state = CrowdAssignment.State.SUBMITTED
    assignment.submitted_at = timezone.now()
    assignment.token_nonce = new_nonce()
    assignment.save(update_fields=[*fields, "state", "submitted_at", "token_nonce"])
    if assignment.is_gold:
        _worker_block_check(assignment.worker)
    return assignment
