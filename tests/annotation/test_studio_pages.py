"""The studio page: who may open which item, what the page hands to the canvas module, Enter (save
the item's answers, mark it done, go on), and a fixed number of queries however much is on the item."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import Annotation, Label, MediaItem, Question, Task
from platform_core.models import Role
from tests.conftest import World
from tests.factories import LabelFactory, MembershipFactory, make_image

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def studio_url(task: Task, item: MediaItem, org_slug: str = "demo-lab") -> str:
    return reverse("studio", kwargs={"org_slug": org_slug, "task_id": task.pk, "media_id": item.pk})


def page_data(response: Any) -> dict[str, Any]:
    return response.context["studio_data"]


def add_items(world: World, count: int) -> list[MediaItem]:
    items = [make_image(world.demo.project, name=f"extra{n}.png") for n in range(count)]
    MediaItem.objects.filter(pk__in=[i.pk for i in items]).update(task=world.demo.task)
    return items


def test_it_opens_the_studio_on_an_annotators_own_item(world: World) -> None:
    response = client_for(world.annotator).get(studio_url(world.demo.task, world.demo.media))
    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "annotation/studio.html"
    html = response.content.decode()
    assert 'type="module"' in html and "js/studio/studio.js" in html
    # The canvas module's data: a json_script element, never an inline script.
    assert '<script id="studio-data" type="application/json">' in html
    data = page_data(response)
    media = world.demo.media
    assert (data["mediaId"], data["width"], data["height"]) == (media.pk, media.width, media.height)
    assert data["imageUrl"] == reverse("media_file", kwargs={"org_slug": "demo-lab", "media_id": media.pk})
    assert data["annotationsUrl"] == reverse(
        "api_annotation_list", kwargs={"org_slug": "demo-lab", "media_id": media.pk}
    )
    label = world.demo.label
    assert data["labels"] == [
        {
            "id": label.pk,
            "name": label.name,
            "color": label.color,
            "kind": "mask",
            "key": 1,
            "questions": [
                {
                    "id": world.demo.question.pk,
                    "text": "Quality",
                    "choices": ["good", "partially visible", "bad"],
                    "default": "",
                    "required": False,
                }
            ],
        }
    ]
    # No checkpoint here: the smart tool offers the classical segmenter alone, and says so.
    assert [model["key"] for model in data["smart"]["models"]] == ["opencv"]
    assert (data["smart"]["available"], data["smart"]["default"]) == (True, "opencv")
    assert "No SAM 2 checkpoint" in data["smart"]["message"]


def test_it_offers_the_models_whose_checkpoints_are_there_and_picks_a_trained_one(
    world: World, settings: Any, sam2_checkpoint_dir: Path, tmp_path: Path
) -> None:
    settings.SAM2_CHECKPOINT_DIR = sam2_checkpoint_dir  # tiny, with random weights
    response = client_for(world.annotator).get(studio_url(world.demo.task, world.demo.media))
    smart = page_data(response)["smart"]
    assert [(m["key"], m["untrained"], m["fallback"]) for m in smart["models"]] == [
        ("tiny", True, False),
        ("opencv", False, True),
    ]
    assert smart["default"] == "opencv"  # random weights are picked on purpose only
    picker = response.content.decode().split('id="smart-model"', 1)[1].split("</select>", 1)[0]
    assert "SAM 2.1 tiny (random weights: its masks are noise)" in picker
    assert '<option value="opencv" selected>' in picker

    trained = tmp_path / "trained"
    trained.mkdir()
    shutil.copy(sam2_checkpoint_dir / "sam2.1_hiera_tiny.pt", trained)  # no "untrained" sidecar
    settings.SAM2_CHECKPOINT_DIR = trained
    smart = page_data(client_for(world.annotator).get(studio_url(world.demo.task, world.demo.media)))["smart"]
    assert (smart["default"], smart["message"]) == ("tiny", "")


def test_it_offers_the_studio_socket_only_where_a_consumer_serves_it(world: World) -> None:
    from platform_core.routing import websocket_urlpatterns

    data = page_data(client_for(world.annotator).get(studio_url(world.demo.task, world.demo.media)))
    path = f"ws/o/demo-lab/studio/{world.demo.media.pk}/"
    served = any(pattern.pattern.match(path) for pattern in websocket_urlpatterns)
    assert data["socketPath"] == ("/" + path if served else None)


def test_it_gives_keys_1_to_9_to_the_first_nine_labels_in_order(world: World) -> None:
    project = world.demo.project
    for n in range(10):
        LabelFactory(project=project, name=f"l{n:02}", order=n + 1)
    Label.objects.filter(pk=world.demo.label.pk).update(order=0)
    data = page_data(client_for(world.annotator).get(studio_url(world.demo.task, world.demo.media)))
    assert [label["key"] for label in data["labels"]] == [1, 2, 3, 4, 5, 6, 7, 8, 9, None, None]
    assert data["labels"][0]["id"] == world.demo.label.pk


def test_it_shows_guideline_notes_as_sanitised_markdown(world: World) -> None:
    Label.objects.filter(pk=world.demo.label.pk).update(
        guidelines="Trace the **whole** hull.\n\n<script>alert(1)</script>"
    )
    html = client_for(world.annotator).get(studio_url(world.demo.task, world.demo.media)).content.decode()
    assert f'data-guidelines="{world.demo.label.pk}"' in html
    assert "Trace the <strong>whole</strong> hull." in html
    assert "<script>alert" not in html


def test_it_shows_per_object_and_per_item_questions(world: World) -> None:
    Question.objects.create(project=world.demo.project, text="Dense scene", choices=["yes", "no"], default="no")
    html = client_for(world.annotator).get(studio_url(world.demo.task, world.demo.media)).content.decode()
    # The label's question, for the selected object ...
    assert f'data-object-questions="{world.demo.label.pk}"' in html
    assert f'name="oq{world.demo.question.pk}" value="partially visible"' in html
    # ... and the item's, in the form Enter posts, with its default chosen.
    item_question = Question.objects.get(text="Dense scene")
    assert f'name="q{item_question.pk}" value="no" checked' in html


def test_it_navigates_the_task_inside_the_studio(world: World) -> None:
    first = world.demo.media
    second, third = add_items(world, 2)
    MediaItem.objects.filter(pk=second.pk).update(done_at="2026-01-01T00:00:00Z")
    data = page_data(client_for(world.annotator).get(studio_url(world.demo.task, first)))
    task = world.demo.task
    assert data["nav"] == {
        "previous": None,
        "next": studio_url(task, second),
        "next_open": studio_url(task, third),
    }


def test_it_links_the_task_item_page_to_the_studio(world: World) -> None:
    url = reverse(
        "task_item", kwargs={"org_slug": "demo-lab", "task_id": world.demo.task.pk, "media_id": world.demo.media.pk}
    )
    html = client_for(world.annotator).get(url).content.decode()
    assert f'href="{studio_url(world.demo.task, world.demo.media)}">Open in the studio</a>' in html


@pytest.mark.parametrize("who", ["reviewer", "manager", "owner"])
def test_it_opens_any_task_item_for_reviewers_and_above(world: World, who: str) -> None:
    response = client_for(getattr(world, who)).get(studio_url(world.demo.task, world.demo.media))
    assert response.status_code == 200


def test_it_answers_404_to_an_annotator_on_another_annotators_task(world: World) -> None:
    colleague = MembershipFactory(organization=world.demo.org, role=Role.ANNOTATOR).user
    task = Task.objects.create(project=world.demo.project, name="Theirs", assignee=colleague)
    item = make_image(world.demo.project, name="theirs.png")
    MediaItem.objects.filter(pk=item.pk).update(task=task)
    for method in ("get", "post"):
        assert getattr(client_for(world.annotator), method)(studio_url(task, item)).status_code == 404
    assert client_for(colleague).get(studio_url(task, item)).status_code == 200


def test_it_answers_404_for_an_item_of_another_task(world: World) -> None:
    other_task = Task.objects.create(project=world.demo.project, name="Other", assignee=world.annotator)
    item = make_image(world.demo.project, name="elsewhere.png")
    MediaItem.objects.filter(pk=item.pk).update(task=other_task)
    assert client_for(world.annotator).get(studio_url(world.demo.task, item)).status_code == 404


@pytest.mark.parametrize("method", ["get", "post"])
def test_it_answers_404_to_a_member_of_another_organisation(world: World, method: str) -> None:
    outsider = client_for(world.outsider)
    # Demo Lab's item under Demo Lab's address, and under the outsider's own organisation.
    assert getattr(outsider, method)(studio_url(world.demo.task, world.demo.media)).status_code == 404
    mixed = studio_url(world.other.task, world.demo.media, org_slug="other-lab")
    assert getattr(outsider, method)(mixed).status_code == 404


def test_it_sends_an_anonymous_visitor_to_sign_in(world: World) -> None:
    response = Client().get(studio_url(world.demo.task, world.demo.media))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_saves_the_item_as_done_and_goes_to_the_next_unannotated_item(world: World) -> None:
    question = Question.objects.create(project=world.demo.project, text="Dense scene", choices=["yes", "no"])
    first = world.demo.media
    second, third = add_items(world, 2)
    MediaItem.objects.filter(pk=second.pk).update(done_at="2026-01-01T00:00:00Z")
    response = client_for(world.annotator).post(studio_url(world.demo.task, first), {f"q{question.pk}": "yes"})
    assert response.status_code == 302
    assert response["Location"] == studio_url(world.demo.task, third)
    first.refresh_from_db()
    assert first.done_at is not None and first.done_by == world.annotator
    assert first.answers == {str(question.pk): "yes"}
    world.demo.task.refresh_from_db()
    assert world.demo.task.state == Task.State.IN_PROGRESS


def test_it_goes_to_my_tasks_when_the_last_item_is_done(world: World) -> None:
    response = client_for(world.annotator).post(studio_url(world.demo.task, world.demo.media))
    assert response.status_code == 302
    assert response["Location"] == reverse("my_tasks", kwargs={"org_slug": "demo-lab"})


def test_it_keeps_the_item_open_when_a_required_answer_is_missing(world: World) -> None:
    Question.objects.create(project=world.demo.project, text="Dense scene", choices=["yes", "no"], required=True)
    response = client_for(world.annotator).post(studio_url(world.demo.task, world.demo.media))
    assert response.status_code == 400
    assert "an answer is required" in response.content.decode()
    world.demo.media.refresh_from_db()
    assert world.demo.media.done_at is None


def test_it_refuses_to_save_an_item_of_a_submitted_task(world: World) -> None:
    Task.objects.filter(pk=world.demo.task.pk).update(state=Task.State.SUBMITTED)
    response = client_for(world.annotator).post(studio_url(world.demo.task, world.demo.media))
    assert response.status_code == 400
    world.demo.media.refresh_from_db()
    assert world.demo.media.done_at is None


def _annotate(item: MediaItem, label: Label, count: int) -> None:
    rle = Annotation.objects.filter(media__project=item.project).first().rle
    Annotation.objects.bulk_create(
        Annotation(media=item, label=label, rle=rle, bbox=[8, 6, 16, 14], area=224, z_order=n) for n in range(count)
    )


def test_it_renders_in_the_same_number_of_queries_however_many_objects_labels_and_questions(world: World) -> None:
    client = client_for(world.annotator)
    url = studio_url(world.demo.task, world.demo.media)
    add_items(world, 1)  # an unannotated item after this one in both runs (the navigation's queries)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(5):
        label = LabelFactory(project=world.demo.project, name=f"more{n}")
        Question.objects.create(project=world.demo.project, label=label, text="Quality", choices=["good", "bad"])
        Question.objects.create(project=world.demo.project, text=f"Item question {n}", choices=["a", "b"])
        _annotate(world.demo.media, label, 20)
    add_items(world, 3)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert len(many.captured_queries) == len(few.captured_queries), [q["sql"] for q in many.captured_queries]
    assert len(page_data(response)["labels"]) == 6
    assert json.dumps(page_data(response))  # JSON as it stands
