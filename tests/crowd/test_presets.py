"""The PartInventory preset: part labels with the "one or many" question, a qualification test on
legs, an open batch per part, and gold made from part objects."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from annotation.models import Label
from crowd.models import CrowdBatch, GoldItem, QualificationTest
from crowd.presets import PARTS, partinventory_apply, partinventory_gold, partinventory_project
from tests.crowd.helpers import add_object
from tests.factories import make_image


def test_it_creates_a_partinventory_project(world: Any) -> None:
    preset = partinventory_project(organization=world.demo.org, manager=world.manager)
    project = preset.project
    assert project.organization == world.demo.org
    assert [(label.name, label.color, label.kind) for label in project.labels.order_by("order")] == [
        (name, colour, "mask") for name, colour, _ in PARTS
    ]
    for name, question in preset.questions.items():
        assert (question.label.name, question.text, question.choices) == (
            name,
            "One or many instances?",
            ["one", "many"],
        )
    test = QualificationTest.objects.get(project=project)
    assert test.question == preset.questions["leg"]
    assert (test.pass_mark, test.retake_delay_hours, test.item_count) == (0.75, 24, 3)
    batches = CrowdBatch.objects.filter(project=project)
    assert {batch.question.label.name for batch in batches} == {name for name, _, _ in PARTS}
    for batch in batches:
        assert (batch.state, batch.provider, batch.assignments_per_item, batch.gold_rate) == ("open", "link", 3, 0.2)
        assert batch.object_units and batch.created_by == world.manager
        assert len(batch.completion_code) == 8 and batch.screenout_code != batch.completion_code


def test_it_applies_to_an_existing_project_once(world: Any) -> None:
    project = world.demo.project
    first = partinventory_apply(project=project, manager=world.manager, provider="mturk")
    again = partinventory_apply(project=project, manager=world.manager)
    assert again.batches == first.batches and again.test == first.test
    assert CrowdBatch.objects.filter(project=project).count() == 4
    assert {b.provider for b in CrowdBatch.objects.filter(project=project)} == {"mturk"}
    # The project's own label stays; the parts are added beside it.
    assert project.labels.count() == 1 + len(PARTS)


def test_it_keeps_a_qualification_test_the_project_has(world: Any) -> None:
    existing = QualificationTest.objects.create(project=world.demo.project, question=world.demo.question)
    preset = partinventory_apply(project=world.demo.project, manager=world.manager)
    assert preset.test == existing and preset.test.question == world.demo.question


def test_it_refuses_a_part_name_taken_by_another_kind_of_label(world: Any) -> None:
    Label.objects.create(project=world.demo.project, name="leg", kind=Label.Kind.CLASSIFICATION)
    with pytest.raises(ValidationError, match="not a mask label"):
        partinventory_apply(project=world.demo.project, manager=world.manager)
    assert not CrowdBatch.objects.exists()
    assert world.demo.project.labels.count() == 2  # nothing else was added


def test_it_refuses_a_provider_without_workers_to_link(world: Any) -> None:
    with pytest.raises(ValidationError, match="study link or Mechanical Turk"):
        partinventory_apply(project=world.demo.project, manager=world.manager, provider="internal")


def test_it_makes_gold_of_a_part_object(world: Any) -> None:
    preset = partinventory_project(organization=world.demo.org, manager=world.manager)
    media = make_image(preset.project)
    leg = add_object(media, preset.labels["leg"], [4, 4, 20, 40])
    gold = partinventory_gold(preset=preset, annotation=leg, answer="many", purpose="both")
    assert (gold.question, gold.media, gold.for_qualification, gold.for_hidden) == (
        preset.questions["leg"],
        media,
        True,
        True,
    )
    with pytest.raises(ValidationError):
        partinventory_gold(preset=preset, annotation=add_object(media, preset.labels["tail"], [1, 1, 9, 9]), answer="3")
    with pytest.raises(ValidationError, match="not one of the preset's parts"):
        partinventory_gold(preset=preset, annotation=world.demo.annotation, answer="one")
    assert GoldItem.objects.count() == 1
