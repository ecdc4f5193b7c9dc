"""Crowd set-ups on one side of the world fixture: an item question, regular items, hidden and
qualification gold, a qualification test and an open batch (``crowd_setup``); the same with a
question about each object of a part label (``object_crowd_setup``) or a mask label to draw
(``mask_crowd_setup``); a worker's client that records every response it receives; and the drawing
a mask task page posts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.test import Client
from django.urls import reverse

from annotation.masks import box_to_rle, rle_area, rle_bbox
from annotation.models import Annotation, Label, MediaItem, Question
from crowd.models import CrowdBatch, GoldItem, QualificationTest
from tests.factories import make_image

CHOICES = ["one", "many"]


@dataclass
class Crowd:
    batch: CrowdBatch
    question: Question
    regular: list[MediaItem]
    hidden: list[GoldItem]
    qualification: list[GoldItem]
    test: QualificationTest | None


def crowd_setup(
    side: Any,
    *,
    provider: str = "link",
    regular: int = 3,
    hidden: int = 2,
    qualification: int = 2,
    with_test: bool = True,
    k: int = 3,
    gold_rate: float = 0.0,
    items_per_session: int = 10,
) -> Crowd:
    project = side.project
    question = Question.objects.create(project=project, text="One or many instances?", choices=CHOICES)
    # The world's own item counts as a regular item too.
    items = [side.media, *(make_image(project, name=f"part-{n}.png") for n in range(regular - 1))]
    hidden_gold = [
        GoldItem.objects.create(
            project=project, media=make_image(project, name=f"h{n}.png"), question=question, answer="many"
        )
        for n in range(hidden)
    ]
    qual_gold = [
        GoldItem.objects.create(
            project=project,
            media=make_image(project, name=f"q{n}.png"),
            question=question,
            answer="one",
            purpose=GoldItem.Purpose.QUALIFICATION,
        )
        for n in range(qualification)
    ]
    test = (
        QualificationTest.objects.create(project=project, question=question, item_count=qualification, pass_mark=1.0)
        if with_test
        else None
    )
    batch = CrowdBatch.objects.create(
        project=project,
        name="Parts",
        provider=provider,
        question=question,
        assignments_per_item=k,
        gold_rate=gold_rate,
        items_per_session=items_per_session,
        completion_code="C0MPL3TE",
        screenout_code="SCR33N",
    )
    return Crowd(batch, question, items, hidden_gold, qual_gold, test)


def link_url(batch: CrowdBatch, pid: str = "worker-1", session: str = "s1") -> str:
    path = reverse("crowd_link_entry", kwargs={"public_id": batch.public_id})
    return f"{path}?{urlencode({'PROLIFIC_PID': pid, 'STUDY_ID': 'study-1', 'SESSION_ID': session})}"


def mturk_url(batch: CrowdBatch, *, assignment: str = "A1", worker: str = "W1", host: str = "") -> str:
    path = reverse("crowd_mturk_entry", kwargs={"public_id": batch.public_id})
    params = {
        "assignmentId": assignment,
        "hitId": "H1",
        "workerId": worker,
        "turkSubmitTo": host or "https://workersandbox.mturk.com",
    }
    return f"{path}?{urlencode(params)}"


@dataclass
class RecordingClient:
    """A worker's browser without cookies: every response body and header set is kept."""

    client: Client = field(default_factory=Client)
    seen: list[Any] = field(default_factory=list)

    def get(self, url: str) -> Any:
        response = self.client.get(url)
        self.seen.append(response)
        return response

    def post(self, url: str, data: dict[str, Any]) -> Any:
        response = self.client.post(url, data)
        self.seen.append(response)
        return response


@dataclass
class CrowdRows:
    batch: CrowdBatch
    worker: Any
    gold: GoldItem
    test: QualificationTest
    assignment: Any


def crowd_rows(side: Any) -> CrowdRows:
    """One row of each crowd model on ``side``, made without images of their own (for the admin
    and outsider walks)."""
    from crowd.models import CrowdAssignment, CrowdWorker

    question = Question.objects.create(project=side.project, text="One or many?", choices=CHOICES)
    batch = CrowdBatch.objects.create(project=side.project, name="Batch", question=question)
    worker = CrowdWorker.objects.create(organization=side.org, provider="link", external_id=f"pid-{side.org.slug}")
    gold = GoldItem.objects.create(project=side.project, media=side.media, question=question, answer="one")
    test = QualificationTest.objects.create(project=side.project, question=question)
    assignment = CrowdAssignment.objects.create(batch=batch, worker=worker, media=side.media)
    return CrowdRows(batch, worker, gold, test, assignment)


# --- object units ---------------------------------------------------------------------------
@dataclass
class ObjectCrowd:
    batch: CrowdBatch
    question: Question
    label: Label
    objects: list[Annotation]  # the regular units
    hidden: list[GoldItem]
    qualification: list[GoldItem]
    test: QualificationTest | None


def add_object(media: MediaItem, label: Label, box: list[float], *, proposed: bool = False) -> Annotation:
    """An object of ``label`` on ``media``: the mask of ``box`` ([x0, y0, x1, y1])."""
    rle = box_to_rle(box, height=media.height, width=media.width)
    return Annotation.objects.create(
        media=media, label=label, rle=rle, bbox=rle_bbox(rle), area=rle_area(rle), proposed=proposed
    )


def _boxes(count: int) -> list[list[float]]:
    # Side by side on a 64 × 48 picture, each a different shape.
    return [[2 + 10 * (n % 6), 4 + (n % 3), 9 + 10 * (n % 6), 30 + 5 * (n % 3)] for n in range(count)]


def object_crowd_setup(
    side: Any,
    *,
    provider: str = "link",
    objects: int = 4,
    hidden: int = 2,
    qualification: int = 2,
    both: int = 0,
    with_test: bool = True,
    k: int = 3,
    gold_rate: float = 0.0,
    items_per_session: int = 10,
) -> ObjectCrowd:
    """A part label "leg" with the question "One or many instances?" about each of its objects.
    Regular objects lie two to a picture, hidden gold objects ("many") share those pictures,
    qualification gold objects ("one") have pictures of their own; ``both`` of the qualification
    gold items serve as hidden gold too. A proposed object and the side's own object (another
    label) are never units."""
    project = side.project
    label = Label.objects.create(project=project, name="leg", color="#3cb44b", guidelines="Every **leg** counts.")
    question = Question.objects.create(project=project, label=label, text="One or many instances?", choices=CHOICES)
    pictures = [make_image(project, name=f"animal-{n}.png") for n in range((objects + 1) // 2 or 1)]
    boxes = _boxes(objects + hidden + 1)
    regular = [add_object(pictures[n // 2], label, boxes[n]) for n in range(objects)]
    add_object(pictures[0], label, boxes[-1], proposed=True)
    hidden_gold = [
        GoldItem.objects.create(
            project=project,
            media=pictures[n % len(pictures)],
            annotation=add_object(pictures[n % len(pictures)], label, boxes[objects + n]),
            question=question,
            answer="many",
        )
        for n in range(hidden)
    ]
    qual_gold = []
    for n in range(qualification):
        media = make_image(project, name=f"q-animal-{n}.png")
        purpose = GoldItem.Purpose.BOTH if n < both else GoldItem.Purpose.QUALIFICATION
        qual_gold.append(
            GoldItem.objects.create(
                project=project,
                media=media,
                annotation=add_object(media, label, [4, 4, 30 + n, 40]),
                question=question,
                answer="one",
                purpose=purpose,
            )
        )
    test = (
        QualificationTest.objects.create(project=project, question=question, item_count=qualification, pass_mark=1.0)
        if with_test
        else None
    )
    batch = CrowdBatch.objects.create(
        project=project,
        name="Legs",
        provider=provider,
        question=question,
        assignments_per_item=k,
        gold_rate=gold_rate,
        items_per_session=items_per_session,
        completion_code="C0MPL3TE",
        screenout_code="SCR33N",
    )
    return ObjectCrowd(batch, question, label, regular, hidden_gold, qual_gold, test)


# --- mask tasks -----------------------------------------------------------------------------
GOLD_BOX = [10, 8, 40, 32]  # every gold mask: this box on a 64 × 48 picture


@dataclass
class MaskCrowd:
    batch: CrowdBatch
    label: Label
    regular: list[MediaItem]
    hidden: list[GoldItem]
    qualification: list[GoldItem]
    test: QualificationTest | None


def mask_crowd_setup(
    side: Any,
    *,
    provider: str = "link",
    regular: int = 3,
    hidden: int = 2,
    qualification: int = 2,
    with_test: bool = True,
    k: int = 3,
    gold_rate: float = 0.0,
    iou_threshold: float = 0.7,
    pass_mark: float = 1.0,
) -> MaskCrowd:
    """A mask label "cup" to draw on each item; every gold mask is ``GOLD_BOX``."""
    project = side.project
    label = Label.objects.create(project=project, name="cup", color="#f58231", guidelines="The cup, not the saucer.")
    items = [side.media, *(make_image(project, name=f"table-{n}.png") for n in range(regular - 1))]

    def gold(name: str, purpose: str) -> GoldItem:
        media = make_image(project, name=name)
        rle = box_to_rle(GOLD_BOX, height=media.height, width=media.width)
        return GoldItem.objects.create(project=project, media=media, label=label, rle=rle, purpose=purpose)

    hidden_gold = [gold(f"hm{n}.png", GoldItem.Purpose.HIDDEN) for n in range(hidden)]
    qual_gold = [gold(f"qm{n}.png", GoldItem.Purpose.QUALIFICATION) for n in range(qualification)]
    test = (
        QualificationTest.objects.create(
            project=project,
            kind="mask",
            label=label,
            item_count=qualification,
            pass_mark=pass_mark,
            iou_threshold=iou_threshold,
        )
        if with_test
        else None
    )
    batch = CrowdBatch.objects.create(
        project=project,
        name="Cups",
        provider=provider,
        kind="mask",
        label=label,
        assignments_per_item=k,
        gold_rate=gold_rate,
        completion_code="C0MPL3TE",
        screenout_code="SCR33N",
    )
    return MaskCrowd(batch, label, items, hidden_gold, qual_gold, test)


def drawing(*polygons: list[list[float]], size: tuple[int, int] = (48, 64)) -> str:
    """What the mask task page posts: polygons in the picture's pixels and the picture's size."""
    return json.dumps({"size": list(size), "polygons": [list(p) for p in polygons]})


def box_polygon(box: list[float]) -> list[list[float]]:
    x0, y0, x1, y1 = box
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def crowd_object_rows(side: Any) -> CrowdRows:
    """``crowd_rows`` for object units: the side's per-object question; the assignment is about the
    side's own object, the gold item about a second object on the same item."""
    from crowd.models import CrowdAssignment, CrowdWorker

    batch = CrowdBatch.objects.create(project=side.project, name="Objects", question=side.question)
    worker = CrowdWorker.objects.create(organization=side.org, provider="link", external_id=f"pid-{side.org.slug}")
    other = add_object(side.media, side.label, [30, 20, 50, 40])
    gold = GoldItem.objects.create(
        project=side.project, media=side.media, annotation=other, question=side.question, answer="good"
    )
    test = QualificationTest.objects.create(project=side.project, question=side.question)
    assignment = CrowdAssignment.objects.create(
        batch=batch, worker=worker, media=side.media, annotation=side.annotation
    )
    return CrowdRows(batch, worker, gold, test, assignment)
