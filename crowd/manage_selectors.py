"""Reads behind the manager's crowd pages and the review queue: batches with their progress and
cost, each worker's numbers in a batch, results, the review history, and what waits for a reviewer.

Every lookup starts from the tenant (``for_org`` / ``get_for_org_or_404``): another organisation's
batch, answer, worker, result or task is a 404.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet, Sum
from django.urls import reverse

from annotation.datasets.tables import FORMULA_START
from annotation.masks import rle_area, rle_iou
from annotation.models import Annotation, MediaItem, Project, Task
from crowd.models import CrowdAssignment, CrowdBatch, CrowdResult, CrowdWorker, GoldItem, ReviewAction, TaskKind
from crowd.results import COUNTED_STATES
from crowd.services import worker_gold_accuracy
from platform_core.tenancy import Tenant, get_for_org_or_404

State = CrowdAssignment.State
WORKERS_SHOWN = 100
HISTORY_SHOWN = 50


# --- single objects ----------------------------------------------------------------------------
def batch_get(tenant: Tenant, batch_id: int) -> CrowdBatch:
    queryset = CrowdBatch.objects.select_related("project", "question", "label")
    return get_for_org_or_404(queryset, tenant.org, pk=batch_id)


def assignment_get(tenant: Tenant, assignment_id: int) -> CrowdAssignment:
    queryset = CrowdAssignment.objects.select_related("batch__project", "batch__question", "worker", "media")
    return get_for_org_or_404(queryset, tenant.org, pk=assignment_id)


def worker_get(tenant: Tenant, worker_id: int) -> CrowdWorker:
    return get_for_org_or_404(CrowdWorker, tenant.org, pk=worker_id)


def result_get(tenant: Tenant, result_id: int) -> CrowdResult:
    queryset = CrowdResult.objects.select_related("batch__project", "batch__question", "media__task")
    return get_for_org_or_404(queryset, tenant.org, pk=result_id)


def submitted_task_get(tenant: Tenant, task_id: int) -> Task:
    queryset = Task.objects.select_related("project", "assignee")
    return get_for_org_or_404(queryset, tenant.org, pk=task_id)


# --- batches -----------------------------------------------------------------------------------
def _batch_gold(batch: CrowdBatch) -> QuerySet[GoldItem]:
    """The gold items of the batch's kind of unit, which the hand-out keeps out of regular work."""
    gold = GoldItem.objects.filter(project=batch.project_id)
    if batch.kind == TaskKind.MASK:
        return gold.filter(question__isnull=True, label=batch.label_id)
    return gold.filter(question=batch.question_id, annotation__isnull=not batch.object_units)


def batch_unit_count(batch: CrowdBatch) -> int:
    """The regular units the batch asks about, as the hand-out counts them: the project's images,
    or for object questions the objects of the question's label on them (pre-annotations no person
    has accepted left out); gold units left out."""
    gold = _batch_gold(batch)
    if batch.object_units:
        objects = Annotation.objects.filter(
            label=batch.question.label_id,
            proposed=False,
            media__project=batch.project_id,
            media__kind=MediaItem.Kind.IMAGE,
        )
        return objects.exclude(pk__in=gold.values("annotation")).count()
    items = MediaItem.objects.filter(project=batch.project_id, kind=MediaItem.Kind.IMAGE)
    return items.exclude(pk__in=gold.values("media")).count()


def _with_counts(batches: QuerySet[CrowdBatch]) -> QuerySet[CrowdBatch]:
    def count(**where: object) -> Count:
        return Count("assignments", filter=Q(**{f"assignments__{k}": v for k, v in where.items()}))

    return batches.annotate(
        assigned_count=count(state=State.ASSIGNED),
        submitted_count=count(state=State.SUBMITTED),
        approved_count=count(state=State.APPROVED),
        rejected_count=count(state=State.REJECTED),
        counted_answers=count(state__in=COUNTED_STATES, is_gold=False),
    )


@dataclass(frozen=True)
class BatchRow:
    batch: CrowdBatch
    units: int
    answers_wanted: int  # units × k
    answers_counted: int

    @property
    def percent(self) -> int:
        if not self.answers_wanted:
            return 0
        return round(100 * min(self.answers_counted, self.answers_wanted) / self.answers_wanted)


def batch_list(tenant: Tenant, project: Project) -> list[BatchRow]:
    """The project's batches, newest first, with their progress in answers."""
    batches = _with_counts(
        CrowdBatch.objects.for_org(tenant.org).filter(project=project).select_related("project", "question")
    ).order_by("-created_at", "-id")
    units: dict[tuple, int] = {}
    rows = []
    for batch in batches:
        key = (batch.kind, batch.question_id, batch.label_id)
        if key not in units:
            units[key] = batch_unit_count(batch)
        rows.append(BatchRow(batch, units[key], units[key] * batch.assignments_per_item, batch.counted_answers))
    return rows


@dataclass(frozen=True)
class Progress:
    units: int
    units_done: int  # units with k counted answers
    k: int
    assigned: int
    submitted: int
    approved: int
    rejected: int
    gold: int  # hidden-gold assignments among all of them
    answers_counted: int


def batch_progress(batch: CrowdBatch) -> Progress:
    by_state = dict(CrowdAssignment.objects.filter(batch=batch).values_list("state").annotate(n=Count("id")).order_by())
    done = (
        CrowdAssignment.objects.filter(batch=batch, is_gold=False, state__in=COUNTED_STATES)
        .values("media", "annotation")
        .annotate(n=Count("id"))
        .filter(n__gte=batch.assignments_per_item)
        .order_by()
        .count()
    )
    counted = CrowdAssignment.objects.filter(batch=batch, is_gold=False, state__in=COUNTED_STATES).count()
    return Progress(
        units=batch_unit_count(batch),
        units_done=done,
        k=batch.assignments_per_item,
        assigned=by_state.get(State.ASSIGNED, 0),
        submitted=by_state.get(State.SUBMITTED, 0),
        approved=by_state.get(State.APPROVED, 0),
        rejected=by_state.get(State.REJECTED, 0),
        gold=CrowdAssignment.objects.filter(batch=batch, is_gold=True).count(),
        answers_counted=counted,
    )


def dollars(cents: int) -> str:
    return f"${cents / 100:,.2f}"


@dataclass(frozen=True)
class Cost:
    approved: int
    reward_cents: int
    bonus_cents: int

    @property
    def rewards_cents(self) -> int:
        return self.approved * self.reward_cents

    @property
    def total_cents(self) -> int:
        return self.rewards_cents + self.bonus_cents

    @property
    def reward(self) -> str:
        return dollars(self.reward_cents)

    @property
    def rewards(self) -> str:
        return dollars(self.rewards_cents)

    @property
    def bonuses(self) -> str:
        return dollars(self.bonus_cents)

    @property
    def total(self) -> str:
        return dollars(self.total_cents)


def batch_cost(batch: CrowdBatch) -> Cost:
    """Approved answers (gold included: they are paid work) × the reward, plus the bonuses paid on
    the batch's answers."""
    approved = CrowdAssignment.objects.filter(batch=batch, state=State.APPROVED).count()
    bonuses = ReviewAction.objects.filter(kind=ReviewAction.Kind.BONUS, assignment__batch=batch).aggregate(
        total=Sum("amount_cents")
    )["total"]
    return Cost(approved=approved, reward_cents=batch.reward_cents, bonus_cents=bonuses or 0)


# --- workers of a batch ------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerRow:
    worker: CrowdWorker
    answers: int  # regular answers given in the batch (rejected ones included)
    gold_answered: int  # hidden-gold answers scored in the batch
    gold_total: int  # hidden-gold answers scored, all batches
    gold_accuracy: float | None  # over the worker's latest ten, all batches
    agreement: float | None  # with the batch's aggregated results
    compared: int  # answers that had a result to agree with


def _mask_iou(first: dict, second: dict) -> float:
    if rle_area(first) == 0 and rle_area(second) == 0:
        return 1.0  # both say "nothing here"
    return rle_iou(first, second)


def _agreements(batch: CrowdBatch) -> dict[int, tuple[float, int]]:
    """Each worker's agreement with the results: the share of answers equal to the unit's result,
    or for masks the mean IoU with the unit's majority mask; and how many answers were compared."""
    results = {
        (r.media_id, r.annotation_id if batch.object_units else None): r
        for r in CrowdResult.objects.filter(batch=batch).only("media_id", "annotation_id", "answer", "rle").order_by()
    }
    scores: dict[int, list[float]] = defaultdict(list)
    answers = (
        CrowdAssignment.objects.filter(batch=batch, is_gold=False, state__in=COUNTED_STATES)
        .order_by()
        .values_list("worker_id", "media_id", "annotation_id", "answer", "answer_rle")
    )
    for worker_id, media_id, annotation_id, answer, answer_rle in answers:
        result = results.get((media_id, annotation_id if batch.object_units else None))
        if result is None:
            continue
        if batch.kind == TaskKind.MASK:
            if not (answer_rle and result.rle) or answer_rle.get("size") != result.rle.get("size"):
                continue
            scores[worker_id].append(_mask_iou(answer_rle, result.rle))
        elif answer:
            scores[worker_id].append(1.0 if answer == result.answer else 0.0)
    return {worker_id: (sum(values) / len(values), len(values)) for worker_id, values in scores.items()}


def _workers_with_counts(batch: CrowdBatch) -> QuerySet[CrowdWorker]:
    in_batch = Q(assignments__batch=batch)
    return (
        CrowdWorker.objects.filter(assignments__batch=batch)
        .distinct()
        .annotate(
            answers=Count(
                "assignments",
                filter=in_batch & Q(assignments__is_gold=False) & ~Q(assignments__state=State.ASSIGNED),
                distinct=True,
            ),
            gold_answered=Count(
                "assignments",
                filter=in_batch & Q(assignments__is_gold=True, assignments__gold_correct__isnull=False),
                distinct=True,
            ),
        )
        .order_by("-answers", "external_id")
    )


def _worker_rows(batch: CrowdBatch, workers: Iterable[CrowdWorker]) -> list[WorkerRow]:
    agreements = _agreements(batch)
    rows = []
    for worker in workers:
        gold_total, accuracy = worker_gold_accuracy(worker=worker)
        agreement, compared = agreements.get(worker.pk, (None, 0))
        rows.append(WorkerRow(worker, worker.answers, worker.gold_answered, gold_total, accuracy, agreement, compared))
    return rows


def batch_workers(batch: CrowdBatch) -> tuple[list[WorkerRow], int]:
    """The batch's workers, most answers first (at most ``WORKERS_SHOWN``), and how many there are."""
    workers = _workers_with_counts(batch)
    total = CrowdWorker.objects.filter(assignments__batch=batch).distinct().count()
    return _worker_rows(batch, workers[:WORKERS_SHOWN]), total


def worker_row(batch: CrowdBatch, worker: CrowdWorker) -> WorkerRow | None:
    """One worker's row of ``batch_workers`` (after a block or unblock); None when they have no
    answer in the batch."""
    workers = list(_workers_with_counts(batch).filter(pk=worker.pk))
    return _worker_rows(batch, workers)[0] if workers else None


# --- results -----------------------------------------------------------------------------------
def batch_results(batch: CrowdBatch) -> QuerySet[CrowdResult]:
    """Results waiting for review first (least agreement first), then the settled ones."""
    waiting = Q(needs_review=True, reviewed_at__isnull=True)
    return (
        CrowdResult.objects.filter(batch=batch)
        .select_related("batch__question", "media__task", "reviewed_by")
        .annotate(waiting=ExpressionWrapper(waiting, output_field=BooleanField()))
        .order_by("-waiting", F("agreement").asc(nulls_first=True), "media_id", "annotation_id")
    )


def result_fix_url(tenant: Tenant, result: CrowdResult) -> str:
    """Where a reviewer fixes a result's item: the studio when the item is in a task, else the
    item's page."""
    media = result.media
    if media.task_id is not None:
        kwargs = {"org_slug": tenant.org.slug, "task_id": media.task_id, "media_id": media.pk}
        return reverse("studio", kwargs=kwargs)
    kwargs = {"org_slug": tenant.org.slug, "project_id": media.project_id, "media_id": media.pk}
    return reverse("media_detail", kwargs=kwargs)


def _csv_text(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


CSV_COLUMNS = [
    "item_id",
    "item",
    "object_id",
    "answer",
    "mask",
    "method",
    "votes",
    "agreement",
    "needs_review",
    "reviewed_by",
]


def batch_results_csv(batch: CrowdBatch) -> Iterator[str]:
    """The aggregated answers as CSV lines (a header, then one line per unit). ``mask`` is the
    compressed RLE as JSON for mask batches."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: Iterable[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    results = (
        CrowdResult.objects.filter(batch=batch)
        .select_related("media", "reviewed_by")
        .order_by("media_id", "annotation_id")
    )
    for result in results.iterator(chunk_size=500):
        yield line(
            [
                result.media_id,
                _csv_text(result.media.original_name),
                result.annotation_id or "",
                _csv_text(result.answer),
                json.dumps(result.rle, separators=(",", ":")) if result.rle else "",
                result.method,
                json.dumps(result.votes, ensure_ascii=False, separators=(",", ":")),
                "" if result.agreement is None else repr(round(result.agreement, 6)),
                "yes" if result.needs_review and result.reviewed_at is None else "no",
                result.reviewed_by.get_username() if result.reviewed_by_id else "",
            ]
        )


# --- history -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryRow:
    action: ReviewAction

    @property
    def amount(self) -> str:
        return dollars(self.action.amount_cents) if self.action.kind == ReviewAction.Kind.BONUS else ""


def batch_history(batch: CrowdBatch) -> list[HistoryRow]:
    """The latest decisions about the batch's answers, and blocks of its workers."""
    workers = CrowdAssignment.objects.filter(batch=batch).values("worker")
    actions = (
        ReviewAction.objects.filter(
            Q(assignment__batch=batch) | Q(assignment__isnull=True, task__isnull=True, worker__in=workers)
        )
        .select_related("actor", "worker", "assignment__media")
        .order_by("-created_at", "-id")[:HISTORY_SHOWN]
    )
    return [HistoryRow(action) for action in actions]


# --- the review queue --------------------------------------------------------------------------
def _waiting_result() -> ExpressionWrapper:
    """Whether the assignment's unit has a result waiting for review: two lookups, one per kind of
    unit, so that each can use its unique index (item units, object units)."""
    waiting = CrowdResult.objects.filter(batch=OuterRef("batch"), needs_review=True, reviewed_at__isnull=True)
    item = Exists(waiting.filter(media=OuterRef("media"), annotation__isnull=True))
    obj = Exists(waiting.filter(annotation=OuterRef("annotation")))
    return ExpressionWrapper(Q(item) | Q(obj), output_field=BooleanField())


def review_assignments(tenant: Tenant) -> QuerySet[CrowdAssignment]:
    """Submitted crowd answers: those of units waiting for review first, oldest first."""
    return (
        CrowdAssignment.objects.for_org(tenant.org)
        .filter(state=State.SUBMITTED)
        .select_related("batch__project", "batch__question", "worker", "media")
        .annotate(in_review=_waiting_result())
        .order_by("-in_review", "submitted_at", "id")
    )


def review_results(tenant: Tenant) -> QuerySet[CrowdResult]:
    """Aggregated results waiting for a reviewer, least agreement first."""
    return (
        CrowdResult.objects.for_org(tenant.org)
        .filter(needs_review=True, reviewed_at__isnull=True)
        .select_related("batch__project", "batch__question", "media__task", "reviewed_by")
        .order_by(F("agreement").asc(nulls_first=True), "batch_id", "media_id", "annotation_id")
    )


def review_tasks(tenant: Tenant) -> QuerySet[Task]:
    """Members' tasks handed in for review, oldest first."""
    return (
        Task.objects.for_org(tenant.org)
        .filter(state=Task.State.SUBMITTED)
        .select_related("project", "assignee")
        .annotate(item_count=Count("items"))
        .order_by("updated_at", "id")
    )
