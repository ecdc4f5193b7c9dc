"""Annotation services: create, update and delete with versions, validation of labels, RLE, answers
and frames, the annotator-scope rule, and events published to the item's group only after commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404

from annotation.annotations.payloads import annotation_payload
from annotation.annotations.services import (
    VersionConflict,
    annotation_create,
    annotation_delete,
    annotation_update,
)
from annotation.masks import box_to_rle, mask_decode, mask_encode
from annotation.models import Annotation, Label, MediaItem, Question, Task
from platform_core.models import Role
from platform_core.realtime import media_group
from platform_core.tenancy import Tenant, resolve_tenant
from tests.conftest import World
from tests.factories import LabelFactory, MembershipFactory, ProjectFactory

# The fixture's images are 64 × 48.
BOX = [10, 10, 30, 20]


def tenant_of(user: Any, org_slug: str = "demo-lab") -> Tenant:
    return resolve_tenant(user, org_slug)


def box(world: World, corners: list[int] = BOX) -> dict:
    return box_to_rle(corners, height=world.demo.media.height, width=world.demo.media.width)


def create(world: World, user: Any = None, **kwargs: Any) -> Annotation:
    user = user or world.annotator
    arguments = {
        "tenant": tenant_of(user),
        "media": world.demo.media,
        "label": world.demo.label,
        "rle": box(world),
        "author": user,
        **kwargs,
    }
    return annotation_create(**arguments)


# --- create ------------------------------------------------------------------------------------------


def test_it_creates_an_annotation_at_version_1_with_bbox_and_area(world: World) -> None:
    annotation = create(world, drawn={"box": BOX}, answers={str(world.demo.question.pk): "good"})
    stored = Annotation.objects.get(pk=annotation.pk)
    assert stored.version == 1
    assert (stored.media, stored.label, stored.author) == (world.demo.media, world.demo.label, world.annotator)
    assert stored.rle == box(world)
    assert stored.bbox == [10.0, 10.0, 20.0, 10.0]
    assert stored.area == 200
    assert stored.drawn == {"box": BOX}
    assert stored.answers == {str(world.demo.question.pk): "good"}
    assert (stored.source, stored.frame) == (Annotation.Source.MANUAL, None)


def test_it_puts_a_new_annotation_on_top(world: World) -> None:
    assert world.demo.annotation.z_order == 0
    first = create(world)
    second = create(world)
    assert (first.z_order, second.z_order) == (1, 2)
    assert create(world, z_order=-3).z_order == -3


def test_it_stores_the_canonical_rle(world: World) -> None:
    mask = mask_decode(box(world))
    runs = np.diff(np.concatenate(([0], np.flatnonzero(np.diff(mask.flatten(order="F"))) + 1, [mask.size])))
    annotation = create(world, rle={"size": [48, 64], "counts": runs.tolist()})
    assert annotation.rle == mask_encode(mask)


def test_it_keeps_the_model_and_its_prompts(world: World) -> None:
    detail = {"model": "sam2.1_hiera_tiny", "points": [[12, 14, 1]]}
    annotation = create(world, source=Annotation.Source.MODEL, source_detail=detail)
    annotation.refresh_from_db()
    assert (annotation.source, annotation.source_detail) == ("model", detail)


def test_it_changes_nothing_else_on_the_item(world: World) -> None:
    create(world)
    item = MediaItem.objects.get(pk=world.demo.media.pk)
    task = Task.objects.get(pk=world.demo.task.pk)
    assert (item.done_at, item.answers, task.state) == (None, {}, Task.State.NEW)


def field_error(error: ValidationError, field: str) -> str:
    assert field in error.message_dict, error.message_dict
    return " ".join(error.message_dict[field])


def test_it_refuses_a_label_of_another_project(world: World) -> None:
    other_project_label = LabelFactory(project=ProjectFactory(organization=world.demo.org))
    for label in (other_project_label, world.other.label):
        with pytest.raises(ValidationError) as caught:
            create(world, label=label)
        assert "another project" in field_error(caught.value, "label")
    assert Annotation.objects.filter(media=world.demo.media).count() == 1


def test_it_refuses_a_classification_label(world: World) -> None:
    dense = LabelFactory(project=world.demo.project, name="dense scene", kind=Label.Kind.CLASSIFICATION)
    with pytest.raises(ValidationError) as caught:
        create(world, label=dense)
    assert "classification label" in field_error(caught.value, "label")


@pytest.mark.parametrize(
    ("rle", "code"),
    [
        ({"size": [48, 65], "counts": "0<"}, "wrong_size"),
        ({"size": [48, 64], "counts": "P"}, "bad_rle"),
        ({"size": [48, 64], "counts": [3072]}, "empty"),
        ("not a mask", "bad_rle"),
    ],
)
def test_it_refuses_rle_that_is_not_a_mask_of_the_item(world: World, rle: Any, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        create(world, rle=rle)
    assert [error.code for error in caught.value.error_dict["rle"]] == [code]
    assert Annotation.objects.filter(media=world.demo.media).count() == 1


@pytest.mark.parametrize(
    ("answers", "words"),
    [
        ({"999999": "good"}, "No question 999999"),
        ({"QUESTION": "excellent"}, "'excellent' is not one of the choices"),
        ({"QUESTION": 3}, "is not one of the choices"),
        (["good"], "{question id: choice}"),
    ],
)
def test_it_checks_answers_against_the_labels_questions(world: World, answers: Any, words: str) -> None:
    if isinstance(answers, dict):
        answers = {str(world.demo.question.pk) if k == "QUESTION" else k: v for k, v in answers.items()}
    with pytest.raises(ValidationError) as caught:
        create(world, answers=answers)
    assert words in field_error(caught.value, "answers")


def test_it_refuses_answers_to_another_labels_question(world: World) -> None:
    person = LabelFactory(project=world.demo.project, name="person")
    visible = Question.objects.create(project=world.demo.project, label=person, text="Visible", choices=["yes", "no"])
    with pytest.raises(ValidationError):
        create(world, answers={str(visible.pk): "yes"})
    item_question = Question.objects.create(project=world.demo.project, text="Dense", choices=["yes", "no"])
    with pytest.raises(ValidationError):
        create(world, answers={str(item_question.pk): "yes"})


def test_it_drops_empty_answers_and_takes_question_ids_as_numbers(world: World) -> None:
    question = world.demo.question
    assert create(world, answers={question.pk: "bad"}).answers == {str(question.pk): "bad"}
    assert create(world, answers={str(question.pk): ""}).answers == {}
    assert create(world, answers={str(question.pk): None}).answers == {}


def test_it_refuses_a_frame_on_an_image_and_odd_drawn_data(world: World) -> None:
    with pytest.raises(ValidationError) as caught:
        create(world, frame=3)
    assert "no frames" in field_error(caught.value, "frame")
    with pytest.raises(ValidationError) as caught:
        create(world, drawn=[1, 2])
    assert field_error(caught.value, "drawn")
    with pytest.raises(ValidationError) as caught:
        create(world, source="telepathy")
    assert field_error(caught.value, "source")


# --- who may write ---------------------------------------------------------------------------------


def test_it_answers_404_for_an_item_outside_the_annotators_tasks(world: World) -> None:
    second = MembershipFactory(organization=world.demo.org, role=Role.ANNOTATOR, user__username="annotator2").user
    with pytest.raises(Http404):
        create(world, user=second)
    with pytest.raises(Http404):
        annotation_update(
            tenant=tenant_of(second), annotation=world.demo.annotation, expected_version=1, author=second, z_order=5
        )
    with pytest.raises(Http404):
        annotation_delete(tenant=tenant_of(second), annotation=world.demo.annotation, expected_version=1, actor=second)
    assert Annotation.objects.get(pk=world.demo.annotation.pk).version == 1


def test_it_answers_404_for_another_organisations_item(world: World) -> None:
    outsider = tenant_of(world.outsider, "other-lab")
    with pytest.raises(Http404):
        annotation_create(
            tenant=outsider, media=world.demo.media, label=world.demo.label, rle=box(world), author=world.outsider
        )
    with pytest.raises(Http404):
        annotation_delete(tenant=outsider, annotation=world.demo.annotation, expected_version=1, actor=world.outsider)
    assert Annotation.objects.filter(pk=world.demo.annotation.pk).exists()


def test_it_freezes_a_submitted_task_for_its_annotator_but_not_for_reviewers(world: World) -> None:
    Task.objects.filter(pk=world.demo.task.pk).update(state=Task.State.SUBMITTED)
    world.demo.media.refresh_from_db()
    with pytest.raises(ValidationError) as caught:
        create(world)
    assert caught.value.code == "state"
    assert "submitted" in caught.value.messages[0]
    fixed = annotation_update(
        tenant=tenant_of(world.reviewer),
        annotation=world.demo.annotation,
        expected_version=1,
        author=world.reviewer,
        rle=box(world, [0, 0, 8, 8]),
    )
    assert (fixed.version, fixed.author) == (2, world.reviewer)


# --- update and delete -------------------------------------------------------------------------------


def test_it_updates_and_bumps_the_version(world: World) -> None:
    annotation = world.demo.annotation
    updated = annotation_update(
        tenant=tenant_of(world.reviewer),
        annotation=annotation,
        expected_version=1,
        author=world.reviewer,
        rle=box(world, [0, 0, 4, 5]),
        drawn={"polygon": [[0, 0], [4, 0], [4, 5], [0, 5]]},
        answers={str(world.demo.question.pk): "partially visible"},
        z_order=7,
    )
    stored = Annotation.objects.get(pk=annotation.pk)
    assert updated.version == stored.version == 2
    assert stored.bbox == [0.0, 0.0, 4.0, 5.0]
    assert stored.area == 20
    assert stored.z_order == 7
    assert stored.answers == {str(world.demo.question.pk): "partially visible"}
    assert stored.author == world.reviewer
    again = annotation_update(
        tenant=tenant_of(world.reviewer), annotation=stored, expected_version=2, author=world.reviewer, z_order=1
    )
    assert again.version == 3
    assert Annotation.objects.get(pk=annotation.pk).rle == box(world, [0, 0, 4, 5])  # untouched fields stay


def test_it_refuses_a_stale_version_and_changes_nothing(world: World) -> None:
    annotation = world.demo.annotation
    annotation_update(
        tenant=tenant_of(world.annotator), annotation=annotation, expected_version=1, author=world.annotator, z_order=4
    )
    with pytest.raises(VersionConflict) as caught:
        annotation_update(
            tenant=tenant_of(world.reviewer),
            annotation=annotation,
            expected_version=1,
            author=world.reviewer,
            rle=box(world, [0, 0, 4, 5]),
        )
    assert isinstance(caught.value, Exception)
    assert caught.value.current.pk == annotation.pk
    assert caught.value.current.version == 2
    assert caught.value.current.z_order == 4
    stored = Annotation.objects.get(pk=annotation.pk)
    assert (stored.version, stored.rle, stored.author) == (2, box(world, [8, 6, 24, 20]), world.annotator)
    with pytest.raises(VersionConflict):
        annotation_delete(
            tenant=tenant_of(world.reviewer), annotation=annotation, expected_version=3, actor=world.reviewer
        )
    assert Annotation.objects.filter(pk=annotation.pk).exists()


def test_it_drops_the_old_labels_answers_on_relabelling(world: World) -> None:
    annotation = create(world, answers={str(world.demo.question.pk): "good"})
    person = LabelFactory(project=world.demo.project, name="person")
    relabelled = annotation_update(
        tenant=tenant_of(world.annotator),
        annotation=annotation,
        expected_version=1,
        author=world.annotator,
        label=person,
    )
    assert (relabelled.label, relabelled.answers) == (person, {})
    with pytest.raises(ValidationError) as caught:
        annotation_update(
            tenant=tenant_of(world.annotator),
            annotation=relabelled,
            expected_version=2,
            author=world.annotator,
            label=world.other.label,
        )
    assert "label" in caught.value.message_dict


def test_it_refuses_unknown_changes_and_bad_values_on_update(world: World) -> None:
    arguments = {
        "tenant": tenant_of(world.annotator),
        "annotation": world.demo.annotation,
        "expected_version": 1,
        "author": world.annotator,
    }
    with pytest.raises(TypeError):
        annotation_update(**arguments, media=world.other.media)
    with pytest.raises(ValidationError) as caught:
        annotation_update(**arguments, rle={"size": [1, 1], "counts": "01"})
    assert caught.value.error_dict["rle"][0].code == "wrong_size"
    with pytest.raises(ValidationError) as caught:
        annotation_update(**{**arguments, "expected_version": "1"}, z_order=2)
    assert "version" in caught.value.message_dict
    assert Annotation.objects.get(pk=world.demo.annotation.pk).version == 1


def test_it_deletes_at_the_current_version(world: World) -> None:
    annotation_delete(
        tenant=tenant_of(world.annotator), annotation=world.demo.annotation, expected_version=1, actor=world.annotator
    )
    assert not Annotation.objects.filter(pk=world.demo.annotation.pk).exists()
    with pytest.raises(Http404):
        annotation_delete(
            tenant=tenant_of(world.annotator),
            annotation=world.demo.annotation,
            expected_version=1,
            actor=world.annotator,
        )


# --- events -------------------------------------------------------------------------------------------


@pytest.fixture
def media_events(settings: Any, world: World) -> Callable[[], list[dict]]:
    """What reaches a channel subscribed to Demo Lab's item group (in-memory layer), as a function
    that returns the messages that have arrived since it was last called."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(media_group(world.demo.media.pk), channel)

    async def drain() -> list[dict]:
        messages = []
        while True:
            try:
                messages.append(await asyncio.wait_for(layer.receive(channel), 0.05))
            except TimeoutError:
                return messages

    return lambda: async_to_sync(drain)()


def test_it_publishes_saved_events_only_after_commit(
    world: World, media_events: Callable[[], list[dict]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        annotation = create(world)
        assert media_events() == []  # nothing before the commit
    assert len(callbacks) == 1
    [event] = media_events()
    assert event == {"type": "annotation.saved", "annotation": annotation_payload(annotation), "origin": ""}
    assert event["annotation"]["version"] == 1
    assert event["annotation"]["author"] == "annotator"

    with django_capture_on_commit_callbacks(execute=True):
        updated = annotation_update(
            tenant=tenant_of(world.annotator),
            annotation=annotation,
            expected_version=1,
            author=world.annotator,
            z_order=9,
            origin="specific.channel!abc",
        )
        assert media_events() == []
    [event] = media_events()
    assert event["type"] == "annotation.saved"
    assert event["origin"] == "specific.channel!abc"
    assert (event["annotation"]["version"], event["annotation"]["z_order"]) == (2, 9)
    assert event["annotation"] == annotation_payload(updated)


def test_it_publishes_deleted_events_only_after_commit(
    world: World, media_events: Callable[[], list[dict]], django_capture_on_commit_callbacks: Any
) -> None:
    annotation_id = world.demo.annotation.pk
    with django_capture_on_commit_callbacks(execute=True):
        annotation_delete(
            tenant=tenant_of(world.annotator),
            annotation=world.demo.annotation,
            expected_version=1,
            actor=world.annotator,
            origin="studio",
        )
        assert media_events() == []
    assert media_events() == [{"type": "annotation.deleted", "id": annotation_id, "version": 1, "origin": "studio"}]


def test_it_publishes_nothing_when_the_write_is_refused_or_rolled_back(
    world: World, media_events: Callable[[], list[dict]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(VersionConflict):
            annotation_update(
                tenant=tenant_of(world.annotator),
                annotation=world.demo.annotation,
                expected_version=5,
                author=world.annotator,
                z_order=1,
            )
        with pytest.raises(ValidationError):
            create(world, rle={"size": [48, 64], "counts": [3072]})
        with pytest.raises(RuntimeError), transaction.atomic():
            create(world)
            raise RuntimeError("the surrounding work fails")
    assert callbacks == []
    assert media_events() == []
    assert Annotation.objects.filter(media=world.demo.media).count() == 1
