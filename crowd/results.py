"""Aggregation of a batch's answers into one result per unit, and the writing of those results
where exports read them.

``batch_aggregate`` takes the answers that count (regular, not gold; submitted or approved, never
rejected) and makes one ``CrowdResult`` per unit, a unit being an item, or one object of an item
when the batch asks about each object of a label:

- answers to a question: the majority vote of each unit and, when at least two workers answered
  the batch, Dawid-Skene over the whole batch (its answer is the result's; the method says which);
  ``votes`` is ``{answer: count}`` and the agreement is the share of the unit's answers that give
  the result's answer (the top answer's share, unless Dawid-Skene picked a minority answer);
- masks: the per-pixel majority of the unit's masks, its agreement the mean pairwise IoU.

A unit goes to review when its agreement is below the batch's threshold, when it has a single
answer, or when its top answers tie. Results a reviewer has settled (``reviewed_at``) keep the
reviewer's answer when the batch is aggregated again; results whose answers are all gone (rejected)
are removed unless a reviewer settled them.

Results that are trusted (no review needed, or reviewed) are written where exports read them:
an item question's answer into ``MediaItem.answers``, an object question's answer into that object's
``Annotation.answers`` (a new version, announced to open studios), and a mask as one annotation of
the batch's label with source "crowd" per item. That annotation has no author; once a person
changes it in the studio (it then has one) aggregation leaves it alone. An empty majority mask
(the workers agree nothing is there) writes no annotation.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation.annotations.payloads import annotation_payload
from annotation.masks import rle_area, rle_bbox
from annotation.models import Annotation, MediaItem
from crowd.aggregation import Vote, dawid_skene, majority_vote, mask_agreement, mask_majority
from crowd.models import CrowdAssignment, CrowdBatch, CrowdResult, TaskKind
from platform_core.realtime import media_group, publish_after_commit

# The answers that count: submitted (not yet reviewed) or approved. Rejected answers never do.
COUNTED_STATES = (CrowdAssignment.State.SUBMITTED, CrowdAssignment.State.APPROVED)
WRITE_BATCH_SIZE = 200
# Posteriors closer than this are a tie: Dawid-Skene does not decide the unit.
TIE_TOLERANCE = 1e-9

RESULT_FIELDS = ("method", "answer", "rle", "votes", "agreement", "needs_review")

Unit = tuple[int, int | None]  # (media id, annotation id or None)


@dataclass(frozen=True)
class AggregationSummary:
    """What one aggregation run did."""

    units: int  # units with at least one counted answer
    needs_review: int  # of them, those waiting for a reviewer
    written: int  # answers or masks written where exports read them
    removed: int  # results dropped because no answer of theirs counts any more
    method: str


@dataclass
class _Outcome:
    """One unit's aggregate before it is stored."""

    method: str
    answer: str = ""
    rle: dict = field(default_factory=dict)
    votes: dict = field(default_factory=dict)
    agreement: float | None = None
    needs_review: bool = False


def counted_answers(batch: CrowdBatch) -> Iterable[tuple[int, int | None, int, str, dict]]:
    """``(media id, annotation id, worker id, answer, answer_rle)`` of the answers that count."""
    return (
        CrowdAssignment.objects.filter(batch=batch, is_gold=False, state__in=COUNTED_STATES)
        .order_by("id")
        .values_list("media_id", "annotation_id", "worker_id", "answer", "answer_rle")
    )


def _unit(batch: CrowdBatch, media_id: int, annotation_id: int | None) -> Unit:
    return (media_id, annotation_id if batch.object_units else None)


# --- answers to a question -------------------------------------------------------------------
def _answer_outcomes(batch: CrowdBatch, rows: Iterable[tuple]) -> dict[Unit, _Outcome]:
    triples = [
        (_unit(batch, media_id, annotation_id), worker_id, answer)
        for media_id, annotation_id, worker_id, answer, _rle in rows
        if answer
    ]
    if not triples:
        return {}
    votes = majority_vote(triples)
    counts: dict[Hashable, Counter] = defaultdict(Counter)
    for unit, _worker, answer in triples:
        counts[unit][answer] += 1
    if len({worker for _unit, worker, _answer in triples}) >= 2:
        labels, method = _dawid_skene_answers(triples, votes), CrowdResult.Method.DAWID_SKENE
    else:
        labels, method = {unit: vote.answer for unit, vote in votes.items()}, CrowdResult.Method.MAJORITY
    outcomes = {}
    for unit, vote in votes.items():
        chosen = labels[unit]
        # The share of the unit's answers that agree with the result: the top answer's share, lower
        # when Dawid-Skene trusts a minority (then a person looks).
        agreement = counts[unit][chosen] / vote.count
        outcomes[unit] = _Outcome(
            method=method,
            answer=str(chosen),
            votes=dict(counts[unit].most_common()),
            agreement=agreement,
            needs_review=_vote_needs_review(vote, agreement, batch.agreement_threshold),
        )
    return outcomes


def _dawid_skene_answers(triples: list[tuple], votes: dict[Hashable, Vote]) -> dict[Hashable, Hashable]:
    """Dawid-Skene's answer of each unit; the majority's where its posterior does not single one
    out (workers who each gave one kind of answer tell it nothing: every class is equally likely)."""
    estimate = dawid_skene(triples)
    ordered = np.sort(estimate.posteriors, axis=1)
    undecided = (ordered[:, -1] - ordered[:, -2] <= TIE_TOLERANCE) if len(estimate.classes) > 1 else None
    labels = estimate.labels
    for index, unit in enumerate(estimate.items):
        if undecided is not None and undecided[index]:
            labels[unit] = votes[unit].answer
    return labels


def _vote_needs_review(vote: Vote, agreement: float, threshold: float) -> bool:
    return vote.count < 2 or bool(vote.tied) or agreement < threshold


# --- masks -----------------------------------------------------------------------------------
def _mask_outcomes(batch: CrowdBatch, rows: Iterable[tuple]) -> dict[Unit, _Outcome]:
    masks: dict[Unit, list[dict]] = defaultdict(list)
    for media_id, _annotation_id, _worker_id, _answer, rle in rows:
        if rle:
            masks[(media_id, None)].append(rle)
    return {unit: _mask_outcome(rles, batch.agreement_threshold) for unit, rles in masks.items()}


def _mask_outcome(rles: Sequence[dict], threshold: float) -> _Outcome:
    votes = {"masks": len(rles)}
    try:
        rle, agreement = mask_majority(rles), mask_agreement(rles)
    except (ValueError, ValidationError, KeyError, TypeError):
        # A mask that cannot be read, or masks of different sizes: a person has to look.
        return _Outcome(method=CrowdResult.Method.MASK_MAJORITY, votes=votes, needs_review=True)
    needs_review = agreement is None or agreement < threshold
    return _Outcome(
        method=CrowdResult.Method.MASK_MAJORITY, rle=rle, votes=votes, agreement=agreement, needs_review=needs_review
    )


# --- storing results -------------------------------------------------------------------------
def _apply(result: CrowdResult, outcome: _Outcome) -> None:
    result.method = outcome.method
    result.votes = outcome.votes
    result.agreement = outcome.agreement
    result.needs_review = outcome.needs_review
    if result.reviewed_at is None:
        # A reviewer's answer stands; an unreviewed result follows the answers.
        result.answer, result.rle = outcome.answer, outcome.rle


def _store(batch: CrowdBatch, outcomes: dict[Unit, _Outcome]) -> tuple[list[CrowdResult], int]:
    """Upsert one result per unit; drop unreviewed results of units left without answers."""
    existing = {(r.media_id, r.annotation_id): r for r in CrowdResult.objects.filter(batch=batch).order_by()}
    stale = [r.pk for unit, r in existing.items() if unit not in outcomes and r.reviewed_at is None]
    CrowdResult.objects.filter(pk__in=stale).delete()
    now = timezone.now()
    created, updated = [], []
    results = []
    for unit, outcome in outcomes.items():
        result = existing.get(unit)
        if result is None:
            result = CrowdResult(batch=batch, media_id=unit[0], annotation_id=unit[1])
            _apply(result, outcome)
            created.append(result)
        else:
            before = _stored(result)
            _apply(result, outcome)
            if _stored(result) != before:
                result.updated_at = now  # bulk_update does not run auto_now
                updated.append(result)
        results.append(result)
    CrowdResult.objects.bulk_create(created, batch_size=WRITE_BATCH_SIZE)
    CrowdResult.objects.bulk_update(updated, [*RESULT_FIELDS, "updated_at"], batch_size=WRITE_BATCH_SIZE)
    return results, len(stale)


def _stored(result: CrowdResult) -> tuple:
    return tuple(getattr(result, name) for name in RESULT_FIELDS)


def batch_aggregate(batch: CrowdBatch) -> AggregationSummary:
    """Aggregate the batch's counted answers into its results and write the trusted ones where
    exports read them (see the module docstring). Running it again is safe: results are updated
    in place and an answer already written is not written twice."""
    with transaction.atomic():
        # One run per batch at a time: a second click waits, then finds the results made.
        batch = CrowdBatch.objects.select_for_update(of=("self",)).select_related("question", "label").get(pk=batch.pk)
        rows = list(counted_answers(batch))
        if batch.kind == TaskKind.MASK:
            outcomes = _mask_outcomes(batch, rows)
            method = CrowdResult.Method.MASK_MAJORITY
        else:
            outcomes = _answer_outcomes(batch, rows)
            method = next(iter(outcomes.values())).method if outcomes else CrowdResult.Method.MAJORITY
        results, removed = _store(batch, outcomes)
        written = results_write(batch, results)
    return AggregationSummary(
        units=len(results),
        needs_review=sum(1 for r in results if r.needs_review and r.reviewed_at is None),
        written=written,
        removed=removed,
        method=str(method),
    )


# --- writing trusted results where exports read them -----------------------------------------
def result_trusted(result: CrowdResult) -> bool:
    return not result.needs_review or result.reviewed_at is not None


def results_write(batch: CrowdBatch, results: Iterable[CrowdResult]) -> int:
    """Write the trusted ``results`` of ``batch`` into item answers, object answers or crowd masks;
    returns how many rows changed. Runs inside the caller's transaction (rows are locked)."""
    trusted = [r for r in results if result_trusted(r)]
    if not trusted:
        return 0
    if batch.kind == TaskKind.MASK:
        return _write_masks(batch, [r for r in trusted if r.rle])
    key = str(batch.question_id)
    if batch.object_units:
        return _write_object_answers(key, {r.annotation_id: r.answer for r in trusted if r.annotation_id and r.answer})
    return _write_item_answers(key, {r.media_id: r.answer for r in trusted if r.answer})


def _write_item_answers(key: str, answers: dict[int, str]) -> int:
    items = MediaItem.objects.select_for_update().filter(pk__in=answers).only("pk", "answers")
    changed = [item for item in items if item.answers.get(key) != answers[item.pk]]
    for item in changed:
        item.answers = {**item.answers, key: answers[item.pk]}
    MediaItem.objects.bulk_update(changed, ["answers"], batch_size=WRITE_BATCH_SIZE)
    return len(changed)


def _write_object_answers(key: str, answers: dict[int, str]) -> int:
    objects = Annotation.objects.select_for_update().filter(pk__in=answers)
    changed = [a for a in objects if a.answers.get(key) != answers[a.pk]]
    now = timezone.now()
    for annotation in changed:
        annotation.answers = {**annotation.answers, key: answers[annotation.pk]}
        annotation.version += 1
        annotation.updated_at = now
    Annotation.objects.bulk_update(changed, ["answers", "version", "updated_at"], batch_size=WRITE_BATCH_SIZE)
    _announce(changed)
    return len(changed)


def _crowd_masks(batch: CrowdBatch, media_ids: Iterable[int]) -> dict[int, Annotation]:
    """The batch's crowd annotation of each item, if aggregation made one before."""
    found = Annotation.objects.select_for_update().filter(
        media__in=list(media_ids),
        label=batch.label_id,
        source=Annotation.Source.CROWD,
        source_detail__crowd_batch=batch.pk,
    )
    return {a.media_id: a for a in found.order_by("id")}


def _write_masks(batch: CrowdBatch, results: Sequence[CrowdResult]) -> int:
    results = [r for r in results if rle_area(r.rle) > 0]
    existing = _crowd_masks(batch, (r.media_id for r in results))
    tops = dict(
        Annotation.objects.filter(media__in=[r.media_id for r in results])
        .values_list("media_id")
        .annotate(top=Max("z_order"))
    )
    now = timezone.now()
    created, updated = [], []
    for result in results:
        annotation = existing.get(result.media_id)
        if annotation is None:
            top = tops.get(result.media_id)
            annotation = Annotation(
                media_id=result.media_id,
                label_id=batch.label_id,
                source=Annotation.Source.CROWD,
                source_detail={"crowd_batch": batch.pk},
                z_order=0 if top is None else top + 1,
            )
            created.append(annotation)
        elif annotation.author_id is not None or annotation.rle == result.rle:
            continue  # a person has changed it since (their work stands), or nothing to change
        else:
            annotation.version += 1
            annotation.updated_at = now
            updated.append(annotation)
        annotation.rle, annotation.bbox, annotation.area = result.rle, rle_bbox(result.rle), rle_area(result.rle)
    Annotation.objects.bulk_create(created, batch_size=WRITE_BATCH_SIZE)
    Annotation.objects.bulk_update(
        updated, ["rle", "bbox", "area", "version", "updated_at"], batch_size=WRITE_BATCH_SIZE
    )
    _announce(created + updated)
    return len(created) + len(updated)


def _announce(annotations: Sequence[Annotation]) -> None:
    """Open studios of the items hear of each changed object once the transaction commits."""
    for annotation in annotations:
        publish_after_commit(
            media_group(annotation.media_id),
            {"type": "annotation.saved", "annotation": annotation_payload(annotation), "origin": ""},
        )
