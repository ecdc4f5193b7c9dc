"""A crowd set-up on one side of the world fixture: an item question, regular items, hidden and
qualification gold, a qualification test and an open batch; and a worker's client that records
every response it receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.test import Client
from django.urls import reverse

from annotation.models import MediaItem, Question
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
