"""REST API: labels (with their questions and order) and questions per object or per item."""

from __future__ import annotations

import pytest

from annotation.models import Annotation, Label, Question
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import LabelFactory, ProjectFactory


def labels_url(world: World) -> str:
    return api_url("api_label_list", project_id=world.demo.project.pk)


def label_url(world: World, label: Label) -> str:
    return api_url("api_label_detail", project_id=world.demo.project.pk, label_id=label.pk)


def questions_url(world: World) -> str:
    return api_url("api_question_list", project_id=world.demo.project.pk)


def test_it_lists_labels_with_their_questions(world: World) -> None:
    response = token_client(world.annotator).get(labels_url(world))
    assert response.status_code == 200
    [label] = response.json()["results"]
    assert label["id"] == world.demo.label.pk
    assert label["color"] == "#1f77b4"
    assert label["annotation_count"] == 1  # the fixture's box
    assert [q["text"] for q in label["questions"]] == ["Quality"]
    assert label["questions"][0]["choices"] == ["good", "partially visible", "bad"]


def test_it_lists_labels_in_their_order(world: World) -> None:
    LabelFactory(project=world.demo.project, name="aaa", order=0)
    world.demo.label.order = 5
    world.demo.label.save(update_fields=["order"])
    names = [label["name"] for label in token_client(world.annotator).get(labels_url(world)).json()["results"]]
    assert names == ["aaa", world.demo.label.name]


def test_it_creates_a_label_at_the_end(world: World) -> None:
    response = token_client(world.manager).post(
        labels_url(world),
        {"name": "car", "color": "#FF0000", "kind": "box", "guidelines": "*Whole* car."},
        format="json",
    )
    assert response.status_code == 201, response.json()
    label = Label.objects.get(pk=response.json()["id"])
    assert (label.project, label.color, label.kind, label.guidelines) == (
        world.demo.project,
        "#ff0000",
        "box",
        "*Whole* car.",
    )
    assert response.json()["questions"] == []
    # After the existing label (order 0), so its studio key comes after.
    assert label.order > world.demo.label.order


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "car", "color": "red"}, "color"),
        ({"name": "car", "color": "#12345g"}, "color"),
        ({"name": "car", "color": "#1f77b4", "kind": "polygon"}, "kind"),
        ({"name": "", "color": "#1f77b4"}, "name"),
        ({"color": "#1f77b4"}, "name"),
    ],
)
def test_it_refuses_a_bad_label(world: World, body: dict, field: str) -> None:
    response = token_client(world.manager).post(labels_url(world), body, format="json")
    assert response.status_code == 400
    assert response.json()[field]
    assert world.demo.project.labels.count() == 1


def test_it_refuses_a_duplicate_label_name(world: World) -> None:
    response = token_client(world.manager).post(
        labels_url(world), {"name": world.demo.label.name, "color": "#000000"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"]
    assert world.demo.project.labels.count() == 1


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_it_refuses_label_writes_below_manager(world: World, role: str) -> None:
    client = token_client(getattr(world, role))
    assert client.post(labels_url(world), {"name": "car", "color": "#000000"}, format="json").status_code == 403
    assert client.patch(label_url(world, world.demo.label), {"color": "#000000"}, format="json").status_code == 403
    assert client.delete(label_url(world, world.demo.label)).status_code == 403
    order_url = api_url("api_label_order", project_id=world.demo.project.pk)
    assert client.post(order_url, {"labels": [world.demo.label.pk]}, format="json").status_code == 403
    world.demo.label.refresh_from_db()
    assert world.demo.label.color == "#1f77b4"
    assert world.demo.project.labels.count() == 1


def test_it_recolours_and_renames_a_label(world: World) -> None:
    response = token_client(world.manager).patch(
        label_url(world, world.demo.label), {"color": "#ABCDEF", "name": "person"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["color"], response.json()["name"]) == ("#abcdef", "person")
    world.demo.label.refresh_from_db()
    assert (world.demo.label.color, world.demo.label.name) == ("#abcdef", "person")


def test_it_refuses_a_bad_colour_on_change(world: World) -> None:
    response = token_client(world.manager).patch(label_url(world, world.demo.label), {"color": "blue"}, format="json")
    assert response.status_code == 400
    assert response.json()["color"] == ["Use a colour like #1f77b4."]
    world.demo.label.refresh_from_db()
    assert world.demo.label.color == "#1f77b4"


def test_it_says_how_many_annotations_went_with_a_deleted_label(world: World) -> None:
    for _ in range(2):
        Annotation.objects.create(media=world.demo.media, label=world.demo.label)
    response = token_client(world.manager).delete(label_url(world, world.demo.label))
    assert response.status_code == 200
    assert response.json() == {"annotations_deleted": 3}  # with the fixture's box
    assert not Label.objects.filter(pk=world.demo.label.pk).exists()
    assert not Question.objects.filter(pk=world.demo.question.pk).exists()


def test_it_answers_404_for_a_label_of_another_project(world: World) -> None:
    other_project = ProjectFactory(organization=world.demo.org)
    label = LabelFactory(project=other_project)
    client = token_client(world.manager)
    assert client.get(label_url(world, label)).status_code == 404
    assert client.delete(label_url(world, label)).status_code == 404
    assert Label.objects.filter(pk=label.pk).exists()


def test_it_reorders_labels(world: World) -> None:
    second = LabelFactory(project=world.demo.project, order=1)
    url = api_url("api_label_order", project_id=world.demo.project.pk)
    response = token_client(world.manager).post(url, {"labels": [second.pk, world.demo.label.pk]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"labels": [second.pk, world.demo.label.pk]}
    assert list(world.demo.project.labels.order_by("order").values_list("pk", flat=True)) == [
        second.pk,
        world.demo.label.pk,
    ]


@pytest.mark.parametrize("which", ["missing", "twice", "foreign"])
def test_it_refuses_an_order_that_is_not_every_label_once(world: World, which: str) -> None:
    second = LabelFactory(project=world.demo.project, order=1)
    labels = {
        "missing": [second.pk],
        "twice": [second.pk, second.pk, world.demo.label.pk],
        "foreign": [second.pk, world.demo.label.pk, world.other.label.pk],
    }[which]
    url = api_url("api_label_order", project_id=world.demo.project.pk)
    response = token_client(world.manager).post(url, {"labels": labels}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Give every label of the project exactly once.", "code": "bad_order"}
    assert list(world.demo.project.labels.order_by("order").values_list("pk", flat=True)) == [
        world.demo.label.pk,
        second.pk,
    ]


def test_it_creates_a_per_item_question(world: World) -> None:
    response = token_client(world.manager).post(
        questions_url(world),
        {"label": None, "text": "Dense scene?", "choices": ["yes", "no"], "default": "no"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    question = Question.objects.get(pk=response.json()["id"])
    assert (question.label, question.choices, question.default, question.scope) == (None, ["yes", "no"], "no", "item")


def test_it_creates_a_question_about_a_labels_objects(world: World) -> None:
    response = token_client(world.manager).post(
        questions_url(world),
        {"label": world.demo.label.pk, "text": "One or many?", "choices": ["one", "many"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["label"] == world.demo.label.pk
    label = token_client(world.annotator).get(label_url(world, world.demo.label)).json()
    assert [q["text"] for q in label["questions"]] == ["Quality", "One or many?"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "Dense?", "choices": ["yes"]}, "choices"),
        ({"text": "Dense?", "choices": ["yes", "YES"]}, "choices"),
        ({"text": "Dense?", "choices": ["yes", ""]}, "choices"),
        ({"text": "Dense?", "choices": ["yes", "no"], "default": "maybe"}, "default"),
        ({"text": "", "choices": ["yes", "no"]}, "text"),
        ({"text": "Dense?", "choices": "yes"}, "choices"),
    ],
)
def test_it_refuses_a_bad_question(world: World, body: dict, field: str) -> None:
    response = token_client(world.manager).post(questions_url(world), body, format="json")
    assert response.status_code == 400
    assert response.json()[field]
    assert world.demo.project.questions.count() == 1


def test_it_refuses_a_question_on_a_label_of_another_project_or_organisation(world: World) -> None:
    elsewhere = LabelFactory(project=ProjectFactory(organization=world.demo.org))
    answers = []
    for label in (elsewhere, world.other.label, Label(pk=999_999)):
        response = token_client(world.manager).post(
            questions_url(world), {"label": label.pk, "text": "Dense?", "choices": ["yes", "no"]}, format="json"
        )
        assert response.status_code == 400
        answers.append(response.json())
    # One answer for all three: nothing tells which ids exist elsewhere.
    assert answers == [{"label": ["No such label in this project."]}] * 3
    assert Question.objects.filter(text="Dense?").count() == 0


def test_it_lists_questions_per_object_then_per_item(world: World) -> None:
    Question.objects.create(project=world.demo.project, text="Blurry?", choices=["yes", "no"])
    response = token_client(world.annotator).get(questions_url(world))
    assert response.status_code == 200
    assert [(q["text"], q["label"]) for q in response.json()["results"]] == [
        ("Quality", world.demo.label.pk),
        ("Blurry?", None),
    ]


def test_it_changes_and_deletes_a_question(world: World) -> None:
    url = api_url("api_question_detail", project_id=world.demo.project.pk, question_id=world.demo.question.pk)
    client = token_client(world.manager)
    response = client.patch(url, {"choices": ["good", "bad"], "default": "good"}, format="json")
    assert response.status_code == 200
    world.demo.question.refresh_from_db()
    assert (world.demo.question.choices, world.demo.question.default) == (["good", "bad"], "good")
    assert client.get(url).json()["default"] == "good"

    response = client.patch(url, {"default": "excellent"}, format="json")
    assert response.status_code == 400
    assert response.json()["default"] == ["The default must be one of the choices."]
    world.demo.question.refresh_from_db()
    assert world.demo.question.default == "good"

    assert client.delete(url).status_code == 204
    assert not Question.objects.filter(pk=world.demo.question.pk).exists()


def test_it_refuses_question_writes_below_manager(world: World) -> None:
    url = api_url("api_question_detail", project_id=world.demo.project.pk, question_id=world.demo.question.pk)
    client = token_client(world.reviewer)
    assert client.get(url).status_code == 200
    assert client.patch(url, {"text": "Mine"}, format="json").status_code == 403
    assert client.delete(url).status_code == 403
    assert client.post(questions_url(world), {"text": "Q", "choices": ["a", "b"]}, format="json").status_code == 403
    world.demo.question.refresh_from_db()
    assert world.demo.question.text == "Quality"
    assert world.demo.project.questions.count() == 1


def test_it_answers_404_for_another_organisations_question_under_an_own_project(world: World) -> None:
    url = api_url(
        "api_question_detail",
        org_slug="other-lab",
        project_id=world.other.project.pk,
        question_id=world.demo.question.pk,
    )
    client = token_client(world.outsider)
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code == 404
    assert Question.objects.filter(pk=world.demo.question.pk).exists()
