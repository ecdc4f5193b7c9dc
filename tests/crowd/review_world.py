"""Answers given straight into the database, for the tests of aggregation, review and the
manager's pages: crowd workers of one side of the world fixture, their assignments in any state,
and Mechanical Turk-style assignment ids where the batch is on MTurk."""

from __future__ import annotations

import itertools
from typing import Any

from django.utils import timezone

from annotation.masks import box_to_rle
from annotation.models import MediaItem
from crowd.models import CrowdAssignment, CrowdBatch, CrowdWorker

_ids = itertools.count(1)


def worker(side: Any, name: str, *, provider: str = "link") -> CrowdWorker:
    return CrowdWorker.objects.create(organization=side.org, provider=provider, external_id=name)


def answer(
    batch: CrowdBatch,
    who: CrowdWorker,
    media: MediaItem,
    value: str = "",
    *,
    state: str = CrowdAssignment.State.SUBMITTED,
    is_gold: bool = False,
    annotation: Any = None,
    rle: dict | None = None,
) -> CrowdAssignment:
    """One worker's answer (a choice, or a mask as ``rle``) to one unit of ``batch``."""
    mturk = batch.provider == "mturk"
    return CrowdAssignment.objects.create(
        batch=batch,
        worker=who,
        media=media,
        annotation=annotation,
        is_gold=is_gold,
        gold_correct=(value == "many") if is_gold else None,
        state=state,
        answer=value,
        answer_rle=rle or {},
        submitted_at=None if state == CrowdAssignment.State.ASSIGNED else timezone.now(),
        assignment_id=f"ASSIGNMENT{next(_ids)}" if mturk else "",
        hit_id="HIT1" if mturk else "",
    )


def box(media: MediaItem, x0: int, y0: int, x1: int, y1: int) -> dict:
    """A rectangular mask from corner (x0, y0) to (x1, y1), at the item's size."""
    return box_to_rle([x0, y0, x1, y1], height=media.height, width=media.width)
