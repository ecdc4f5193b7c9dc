"""Crowd project presets: a ready-made set-up a manager starts from instead of building labels,
questions, a qualification test and batches by hand.

``partinventory``: the PartInventory workflow (instance-level part annotation on PartImageNet). A
worker sees one semantic part mask over its image and answers "One or many instances?".

How it maps onto the models: a question belongs to one label, and a batch asks one question. So
each part is a mask label of its own ("head", "torso", "leg", "tail", with colours: that is what
exports name as categories), each part label carries the question, and each part gets its own
batch, whose units are that label's objects (``CrowdBatch.object_units``). The alternative, a single
"part" label, would keep one question and one batch but lose the part's name in the export and on
the worker's page. A project has one qualification test; it asks the question about legs
(``QUALIFYING_PART``), the part where "one or many" is least obvious, and passing it opens every
part's batch. Gold is per object (``partinventory_gold``): each batch mixes in the hidden gold of
its part, and the test draws on the leg gold for qualification.

There is no preset picker on the project form yet: the demo (``manage.py demo``) applies this one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.models import Annotation, Label, Project, Question
from annotation.projects.services import label_create, project_create, question_create
from crowd.models import CrowdBatch, GoldItem, Provider, QualificationTest

PARTS = [
    # name, colour, guideline notes (Markdown)
    ("head", "#e6194b", "The whole head, ears and horns included."),
    ("torso", "#4363d8", "The body between the neck and the legs."),
    ("leg", "#3cb44b", "Legs and feet. Two legs that touch are still **many**."),
    ("tail", "#f58231", "The tail from where it leaves the body."),
]
QUESTION = "One or many instances?"
CHOICES = ["one", "many"]
QUALIFYING_PART = "leg"

ASSIGNMENTS_PER_OBJECT = 3
GOLD_RATE = 0.2
PASS_MARK = 0.75
RETAKE_DELAY_HOURS = 24
TEST_ITEMS = 3


@dataclass
class PartInventory:
    project: Project
    labels: dict[str, Label]
    questions: dict[str, Question]
    test: QualificationTest
    batches: dict[str, CrowdBatch]


def _code() -> str:
    return secrets.token_hex(4).upper()


def _part_label(project: Project, name: str, colour: str, guidelines: str) -> Label:
    label = Label.objects.filter(project=project, name=name).first()
    if label is None:
        return label_create(project=project, name=name, color=colour, kind=Label.Kind.MASK, guidelines=guidelines)
    if label.kind != Label.Kind.MASK:
        raise ValidationError(f"The project has a label “{name}” that is not a mask label: rename it first.")
    return label


def _part_question(project: Project, label: Label) -> Question:
    question = Question.objects.filter(project=project, label=label, text=QUESTION).first()
    return question or question_create(project=project, label=label, text=QUESTION, choices=CHOICES, required=True)


def _qualification(project: Project, question: Question) -> QualificationTest:
    test = QualificationTest.objects.filter(project=project).first()
    if test is not None:
        return test  # a test the manager set up stays as it is
    test = QualificationTest(
        project=project,
        question=question,
        pass_mark=PASS_MARK,
        retake_delay_hours=RETAKE_DELAY_HOURS,
        item_count=TEST_ITEMS,
    )
    test.full_clean()
    test.save()
    return test


def _part_batch(project: Project, part: str, question: Question, *, provider: str, manager: Any) -> CrowdBatch:
    name = f"PartInventory: {part}"
    batch = CrowdBatch.objects.filter(project=project, name=name).first()
    if batch is not None:
        return batch
    batch = CrowdBatch(
        project=project,
        name=name,
        provider=provider,
        question=question,
        assignments_per_item=ASSIGNMENTS_PER_OBJECT,
        gold_rate=GOLD_RATE,
        completion_code=_code(),
        screenout_code=_code(),
        created_by=manager,
    )
    batch.full_clean()
    batch.save()
    return batch


def partinventory_apply(*, project: Project, manager: Any, provider: str = Provider.LINK) -> PartInventory:
    """Give ``project`` the PartInventory set-up: part labels with the question, the qualification
    test and an open batch per part. What the project already has (a label or batch of the same
    name, a qualification test) is kept, so applying twice changes nothing."""
    if provider not in (Provider.LINK, Provider.MTURK):
        raise ValidationError("PartInventory batches go to a study link or Mechanical Turk.")
    with transaction.atomic():
        labels = {name: _part_label(project, name, colour, notes) for name, colour, notes in PARTS}
        questions = {name: _part_question(project, label) for name, label in labels.items()}
        test = _qualification(project, questions[QUALIFYING_PART])
        batches = {
            name: _part_batch(project, name, question, provider=provider, manager=manager)
            for name, question in questions.items()
        }
    return PartInventory(project, labels, questions, test, batches)


def partinventory_project(
    *, organization: Any, manager: Any, name: str = "PartInventory", provider: str = Provider.LINK
) -> PartInventory:
    """A new project with the PartInventory set-up (see ``partinventory_apply``)."""
    with transaction.atomic():
        project = project_create(
            organization=organization,
            name=name,
            description="Is each part mask one instance or many? Crowd workers answer, part by part.",
            created_by=manager,
        )
        return partinventory_apply(project=project, manager=manager, provider=provider)


def partinventory_gold(
    *, preset: PartInventory, annotation: Annotation, answer: str, purpose: str = GoldItem.Purpose.HIDDEN
) -> GoldItem:
    """Make a part object gold: its known answer (``one`` or ``many``), hidden in its part's batch,
    in the qualification test (leg objects), or both."""
    part = annotation.label.name
    if part not in preset.questions or annotation.label_id != preset.labels[part].pk:
        raise ValidationError("The object is not one of the preset's parts.")
    gold = GoldItem(
        project=preset.project,
        media=annotation.media,
        annotation=annotation,
        question=preset.questions[part],
        answer=answer,
        purpose=purpose,
    )
    gold.full_clean()
    gold.save()
    return gold
