"""The label manager: add, rename, recolour, reorder and delete labels, their kinds and guideline
notes (Markdown, sanitised), per-label and per-item questions, the htmx fragment, who may use it,
and other projects' and organisations' labels and questions answering 404."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import Annotation, Label, Question
from tests.conftest import World
from tests.factories import LabelFactory, ProjectFactory, make_image

HTMX = {"HX-Request": "true"}


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, org: str = "demo-lab", **kwargs: Any) -> str:
    return reverse(name, kwargs={"org_slug": org, **kwargs})


def manager_url(world: World) -> str:
    return url("label_manager", project_id=world.demo.project.pk)


def label_url(name: str, label: Label, org: str = "demo-lab") -> str:
    return url(name, org=org, project_id=label.project_id, label_id=label.pk)


def text_of(response: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def names_in_order(world: World) -> list[str]:
    return list(world.demo.project.labels.order_by("order").values_list("name", flat=True))


def label_fields(label: Label, **changes: str) -> dict[str, str]:
    fields = {"name": label.name, "color": label.color, "kind": label.kind, "guidelines": label.guidelines}
    return {**fields, **changes}


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


# --- the page and its fragment -------------------------------------------------------------------


def rows_of(response: Any) -> list[tuple[int, str]]:
    """(label id, shortcut key) of each label row of the page or fragment, in order."""
    rows = re.findall(
        r'data-label-id="(\d+)">\s*<div class="label-head">\s*<span class="shortcut"[^>]*>(\d*)</span>',
        response.content.decode(),
    )
    return [(int(pk), key) for pk, key in rows]


def test_it_lists_the_labels_in_their_order_with_their_shortcut_keys(world: World) -> None:
    first = world.demo.label
    car = LabelFactory(project=world.demo.project, name="car", order=2)  # created before person
    person = LabelFactory(project=world.demo.project, name="person", order=1)
    Annotation.objects.create(media=world.demo.media, label=car)
    response = client_for(world.manager).get(manager_url(world))
    assert response.status_code == 200
    assert "the first nine labels are keys 1…9" in text_of(response)
    assert rows_of(response) == [(first.pk, "1"), (person.pk, "2"), (car.pk, "3")]


def test_it_gives_shortcut_keys_to_the_first_nine_labels_only(world: World) -> None:
    for n in range(1, 10):
        LabelFactory(project=world.demo.project, name=f"extra {n}", order=n)
    response = client_for(world.manager).get(manager_url(world))
    assert [key for _, key in rows_of(response)] == [str(n) for n in range(1, 10)] + [""]


def test_it_renders_the_manager_alone_for_htmx_and_varies_on_it(world: World) -> None:
    client = client_for(world.manager)
    full = client.get(manager_url(world))
    fragment = client.get(manager_url(world), headers=HTMX)
    for response in (full, fragment):
        assert response.status_code == 200
        assert "HX-Request" in response["Vary"]
        assert 'id="label-manager"' in response.content.decode()
        assert world.demo.label.name in response.content.decode()
    assert "<html" in full.content.decode() and "js/colour-fields.js" in full.content.decode()
    assert "<html" not in fragment.content.decode()
    assert fragment.content.decode().lstrip().startswith('<div id="label-manager"')


def test_it_shows_a_labels_object_count_and_its_questions(world: World) -> None:
    for _ in range(2):
        Annotation.objects.create(media=world.demo.media, label=world.demo.label)
    page = text_of(client_for(world.manager).get(manager_url(world)))
    assert "3 objects" in page  # with the fixture's box
    assert "Quality: good / partially visible / bad" in page


# --- add -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mask", "box", "classification"])
def test_it_adds_a_label_of_each_kind_at_the_end_of_the_order(world: World, kind: str) -> None:
    response = client_for(world.manager).post(
        manager_url(world), {"name": "tree", "color": "#2CA02C", "kind": kind, "guidelines": "Whole crown."}
    )
    assert response.status_code == 302
    assert response["Location"] == manager_url(world)
    label = Label.objects.get(project=world.demo.project, name="tree")
    # The hex colour is stored lower-cased; the new label comes after the existing one.
    assert (label.color, label.kind, label.guidelines) == ("#2ca02c", kind, "Whole crown.")
    assert names_in_order(world) == [world.demo.label.name, "tree"]


def test_it_answers_an_htmx_add_with_the_refreshed_fragment(world: World) -> None:
    response = client_for(world.manager).post(
        manager_url(world), {"name": "tree", "color": "#2ca02c", "kind": "box"}, headers=HTMX
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert 'value="tree"' in page and 'value="#2ca02c"' in page


@pytest.mark.parametrize("colour", ["red", "#12345", "#1234567", "#gggggg", "1f77b4", ""])
def test_it_refuses_a_colour_that_is_not_a_six_digit_hex(world: World, colour: str) -> None:
    client = client_for(world.manager)
    response = client.post(manager_url(world), {"name": "tree", "color": colour, "kind": "mask"})
    assert response.status_code == 400
    assert "color" in response.context["label_form"].errors
    assert not Label.objects.filter(name="tree").exists()


def test_it_shows_a_form_error_in_the_htmx_fragment_where_htmx_swaps_it(world: World) -> None:
    response = client_for(world.manager).post(
        manager_url(world), {"name": "tree", "color": "red", "kind": "mask"}, headers=HTMX
    )
    # htmx 2 does not swap 4xx answers by default: the fragment with the error must come as a 200.
    assert response.status_code == 200
    assert "Use a colour like #1f77b4." in response.content.decode()
    assert "<html" not in response.content.decode()
    assert not Label.objects.filter(name="tree").exists()


def test_it_refuses_an_unknown_kind_and_a_duplicate_name(world: World) -> None:
    client = client_for(world.manager)
    response = client.post(manager_url(world), {"name": "tree", "color": "#2ca02c", "kind": "polygon"})
    assert response.status_code == 400
    assert "kind" in response.context["label_form"].errors
    response = client.post(manager_url(world), {"name": world.demo.label.name, "color": "#2ca02c", "kind": "mask"})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert world.demo.project.labels.count() == 1


# --- edit, recolour --------------------------------------------------------------------------------------


def test_it_renames_recolours_and_rekinds_a_label(world: World) -> None:
    label = world.demo.label
    response = client_for(world.manager).post(
        label_url("label_edit", label),
        label_fields(label, name="vehicle", color="#FF7F0E", kind="box", guidelines="Include mirrors."),
    )
    assert response.status_code == 302
    label.refresh_from_db()
    assert (label.name, label.color, label.kind, label.guidelines) == ("vehicle", "#ff7f0e", "box", "Include mirrors.")


def test_it_keeps_a_label_when_the_new_colour_is_invalid_and_says_why(world: World) -> None:
    label = world.demo.label
    response = client_for(world.manager).post(
        label_url("label_edit", label), label_fields(label, name="vehicle", color="#ff7f0"), headers=HTMX
    )
    assert response.status_code == 200
    assert f"{label.name}: Use a colour like #1f77b4." in response.content.decode()
    label.refresh_from_db()
    assert (label.name, label.color) == (world.demo.label.name, "#1f77b4")


def test_it_refuses_to_rename_a_label_to_a_name_its_project_already_uses(world: World) -> None:
    other = LabelFactory(project=world.demo.project, name="person", order=1)
    response = client_for(world.manager).post(
        label_url("label_edit", other), label_fields(other, name=world.demo.label.name), follow=True
    )
    assert "already exists" in response.content.decode()
    other.refresh_from_db()
    assert other.name == "person"


# --- reorder ------------------------------------------------------------------------------------------------


def test_it_moves_labels_up_and_down_which_changes_their_shortcut_keys(world: World) -> None:
    first = world.demo.label
    person = LabelFactory(project=world.demo.project, name="person", order=1)
    LabelFactory(project=world.demo.project, name="car", order=2)
    client = client_for(world.manager)
    response = client.post(label_url("label_move", person), {"direction": "up"}, headers=HTMX)
    assert response.status_code == 200
    assert names_in_order(world) == ["person", first.name, "car"]
    assert list(world.demo.project.labels.values_list("order", flat=True)) == [0, 1, 2]
    # The fragment shows the new order: person is now key 1.
    assert rows_of(response) == [(person.pk, "1"), (first.pk, "2"), (world.demo.project.labels.get(name="car").pk, "3")]
    client.post(label_url("label_move", person), {"direction": "down"})
    client.post(label_url("label_move", person), {"direction": "down"})
    assert names_in_order(world) == [first.name, "car", "person"]


def test_it_leaves_the_first_label_first_and_the_last_label_last(world: World) -> None:
    first = world.demo.label
    last = LabelFactory(project=world.demo.project, name="person", order=1)
    client = client_for(world.manager)
    assert client.post(label_url("label_move", first), {"direction": "up"}).status_code == 302
    assert client.post(label_url("label_move", last), {"direction": "down"}).status_code == 302
    assert names_in_order(world) == [first.name, "person"]


# --- delete ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "sentence"),
    [
        (0, "No annotation uses this label."),
        (1, "1 annotation with this label will be deleted too."),
        (3, "3 annotations with this label will be deleted too."),
    ],
)
def test_it_says_how_many_annotations_go_with_a_deleted_label(world: World, annotations: int, sentence: str) -> None:
    world.demo.annotation.delete()  # only this test's annotations count
    other_label = LabelFactory(project=world.demo.project, name="person", order=1)
    Annotation.objects.create(media=world.demo.media, label=other_label)  # not counted
    for _ in range(annotations):
        Annotation.objects.create(media=world.demo.media, label=world.demo.label)
    response = client_for(world.manager).get(label_url("label_delete", world.demo.label))
    assert response.status_code == 200
    assert sentence in text_of(response)
    assert Label.objects.filter(pk=world.demo.label.pk).exists()


def test_it_deletes_a_label_with_its_annotations_and_questions(world: World) -> None:
    label = world.demo.label
    kept = LabelFactory(project=world.demo.project, name="person", order=1)
    kept_annotation = Annotation.objects.create(media=world.demo.media, label=kept)
    for _ in range(2):
        Annotation.objects.create(media=world.demo.media, label=label)
    response = client_for(world.manager).post(label_url("label_delete", label), follow=True)
    assert response.redirect_chain[-1][0] == manager_url(world)
    assert f"Label “{label.name}” deleted with 3 annotations." in response.content.decode()  # and the fixture's
    assert not Label.objects.filter(pk=label.pk).exists()
    assert not Annotation.objects.filter(label_id=label.pk).exists()
    assert not Question.objects.filter(pk=world.demo.question.pk).exists()
    assert Annotation.objects.filter(pk=kept_annotation.pk).exists()
    assert Label.objects.filter(pk=world.other.label.pk).exists()


# --- guideline notes -------------------------------------------------------------------------------------


def test_it_renders_guideline_notes_as_markdown(world: World) -> None:
    label = world.demo.label
    label.guidelines = "Mark **every** wheel.\n\n- front\n- back\n\nSee [the guide](https://example.org/guide)."
    label.save()
    page = client_for(world.manager).get(manager_url(world)).content.decode()
    assert "<strong>every</strong>" in page
    assert "<li>front</li>" in page
    assert '<a href="https://example.org/guide" rel="noopener noreferrer nofollow">the guide</a>' in page


def test_it_never_lets_script_from_guideline_notes_reach_the_page(world: World) -> None:
    notes = (
        "<script>alert('notes')</script>\n\n"
        '<img src="x" onerror="alert(1)">\n\n'
        "[click](javascript:alert(2)) and [data](data:text/html;base64,PHNjcmlwdD4=)\n\n"
        '<a href="javascript:alert(3)">raw link</a> <iframe src="https://evil.example"></iframe>\n\n'
        "![pixel](javascript:alert(4)) **still bold**"
    )
    response = client_for(world.manager).post(
        label_url("label_edit", world.demo.label), label_fields(world.demo.label, guidelines=notes)
    )
    assert response.status_code == 302
    page = client_for(world.manager).get(manager_url(world)).content.decode()
    assert "<strong>still bold</strong>" in page
    for tag, attrs in tags_of(page):
        assert tag not in {"iframe", "object", "embed"}
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/static/"), attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, attrs)
            assert not (value or "").strip().lower().startswith(("javascript:", "data:")), (tag, attrs)
    # Raw HTML in the notes comes back as text, never as markup.
    assert "<script>alert" not in page and "&lt;script&gt;" in page


# --- questions ---------------------------------------------------------------------------------------------


def test_it_adds_a_question_about_each_object_of_a_label_with_a_default(world: World) -> None:
    label = world.demo.label
    response = client_for(world.manager).post(
        url("question_add", project_id=world.demo.project.pk),
        {"label": label.pk, "text": "Dense scene", "choices": "yes\n  no \n\n", "default": "no", "required": "on"},
        headers=HTMX,
    )
    assert response.status_code == 200
    question = Question.objects.get(label=label, text="Dense scene")
    assert (question.choices, question.default, question.required) == (["yes", "no"], "no", True)
    assert question.order == 1  # after "Quality"
    assert "Dense scene: yes / no" in text_of(response)


def test_it_offers_the_required_flag_on_per_label_questions_too(world: World) -> None:
    page = client_for(world.manager).get(manager_url(world)).content.decode()
    label_form = page[page.index(f'name="label" value="{world.demo.label.pk}"') :]
    label_form = label_form[: label_form.index("</form>")]
    assert 'name="required"' in label_form


def test_it_adds_a_required_question_about_each_item(world: World) -> None:
    response = client_for(world.manager).post(
        url("question_add", project_id=world.demo.project.pk),
        {"text": "Lighting", "choices": "day\nnight\nindoor", "required": "on"},
    )
    assert response.status_code == 302
    question = Question.objects.get(project=world.demo.project, text="Lighting")
    assert question.label is None and question.required and question.choices == ["day", "night", "indoor"]
    page = text_of(client_for(world.manager).get(manager_url(world)))
    assert "Lighting: day / night / indoor (required)" in page


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"choices": "yes\nno", "default": "maybe"}, "The default must be one of the choices."),
        ({"choices": "yes"}, "A question needs at least two choices."),
        ({"choices": "yes\nYES"}, "The choices must differ from each other."),
        ({"choices": ""}, "This field is required."),
    ],
)
def test_it_refuses_a_bad_item_question_and_says_why(world: World, fields: dict[str, str], error: str) -> None:
    response = client_for(world.manager).post(
        url("question_add", project_id=world.demo.project.pk), {"text": "Dense scene", **fields}
    )
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Question.objects.filter(text="Dense scene").exists()


def test_it_refuses_a_bad_label_question_with_a_message_naming_the_label(world: World) -> None:
    label = world.demo.label
    response = client_for(world.manager).post(
        url("question_add", project_id=world.demo.project.pk),
        {"label": label.pk, "text": "Dense scene", "choices": "yes\nno", "default": "maybe"},
        headers=HTMX,
    )
    assert f"{label.name}: The default must be one of the choices." in response.content.decode()
    assert not Question.objects.filter(text="Dense scene").exists()


def test_it_refuses_a_second_item_question_with_the_same_text(world: World) -> None:
    client = client_for(world.manager)
    target = url("question_add", project_id=world.demo.project.pk)
    client.post(target, {"text": "Lighting", "choices": "day\nnight"})
    response = client.post(target, {"text": "Lighting", "choices": "indoor\noutdoor"})
    assert response.status_code == 400
    assert "already" in response.content.decode()
    assert Question.objects.filter(project=world.demo.project, text="Lighting").count() == 1


def test_it_refuses_a_question_for_a_label_of_another_project(world: World) -> None:
    sibling = LabelFactory(project=ProjectFactory(organization=world.demo.org), name="sibling")
    client = client_for(world.manager)
    target = url("question_add", project_id=world.demo.project.pk)
    for label_id in (sibling.pk, world.other.label.pk, "not-a-number"):
        response = client.post(target, {"label": label_id, "text": "Dense scene", "choices": "yes\nno"})
        assert response.status_code == 404, label_id
    assert not Question.objects.filter(text="Dense scene").exists()


def test_it_deletes_a_question_and_closes_the_gap_in_the_order(world: World) -> None:
    project, label = world.demo.project, world.demo.label
    second = Question.objects.create(project=project, label=label, text="Dense", choices=["yes", "no"], order=1)
    response = client_for(world.manager).post(
        url("question_delete", project_id=project.pk, question_id=world.demo.question.pk), headers=HTMX
    )
    assert response.status_code == 200
    assert not Question.objects.filter(pk=world.demo.question.pk).exists()
    second.refresh_from_db()
    assert second.order == 0
    assert "Quality:" not in text_of(response) and "Dense: yes / no" in text_of(response)


def test_it_answers_404_for_a_question_of_another_project(world: World) -> None:
    sibling = ProjectFactory(organization=world.demo.org)
    question = Question.objects.create(project=sibling, text="Lighting", choices=["day", "night"])
    client = client_for(world.manager)
    for question_id in (question.pk, world.other.question.pk):
        target = url("question_delete", project_id=world.demo.project.pk, question_id=question_id)
        assert client.post(target).status_code == 404
    assert Question.objects.filter(pk__in=[question.pk, world.other.question.pk]).count() == 2


# --- who may --------------------------------------------------------------------------------------------------


def label_routes(world: World, org: str = "demo-lab", side: Any = None) -> list[tuple[str, str]]:
    """(method, url) of every label manager route, for one side's project, label and question."""
    side = side or world.demo
    ids = {"org": org, "project_id": side.project.pk}
    return [
        ("get", url("label_manager", **ids)),
        ("post", url("label_manager", **ids)),
        ("post", url("label_edit", label_id=side.label.pk, **ids)),
        ("post", url("label_move", label_id=side.label.pk, **ids)),
        ("get", url("label_delete", label_id=side.label.pk, **ids)),
        ("post", url("label_delete", label_id=side.label.pk, **ids)),
        ("post", url("question_add", **ids)),
        ("post", url("question_delete", question_id=side.question.pk, **ids)),
    ]


def harmful_post(world: World) -> dict[str, str]:
    return {"name": "hijacked", "color": "#000000", "kind": "box", "text": "Hijacked", "choices": "a\nb"}


def assert_nothing_changed(world: World) -> None:
    for side in (world.demo, world.other):
        side.label.refresh_from_db()
        assert side.label.name != "hijacked"
        assert Question.objects.filter(pk=side.question.pk).exists()
    assert not Label.objects.filter(name="hijacked").exists()
    assert not Question.objects.filter(text="Hijacked").exists()


def test_it_forbids_annotators_and_reviewers_the_label_manager(world: World) -> None:
    for user in (world.annotator, world.reviewer):
        client = client_for(user)
        for method, target in label_routes(world):
            assert getattr(client, method)(target, harmful_post(world)).status_code == 403, (user, target)
    assert_nothing_changed(world)


def test_it_lets_the_owner_in_as_well_as_the_manager(world: World) -> None:
    assert client_for(world.owner).get(manager_url(world)).status_code == 200


def test_it_answers_404_to_an_outsider_on_every_label_route(world: World) -> None:
    outsider = client_for(world.outsider)
    # Demo Lab's objects through Demo Lab and through Other Lab, and Other Lab's through Demo Lab.
    routes = (
        label_routes(world)
        + label_routes(world, org="other-lab")
        + label_routes(world, org="demo-lab", side=world.other)
    )
    for method, target in routes:
        assert getattr(outsider, method)(target, harmful_post(world)).status_code == 404, target
    assert_nothing_changed(world)


def test_it_answers_404_to_a_manager_for_another_organisations_labels(world: World) -> None:
    manager = client_for(world.manager)
    # Other Lab's project, and Other Lab's label and question under Demo Lab's project.
    mixed = [
        ("post", url("label_edit", project_id=world.demo.project.pk, label_id=world.other.label.pk)),
        ("post", url("label_move", project_id=world.demo.project.pk, label_id=world.other.label.pk)),
        ("get", url("label_delete", project_id=world.demo.project.pk, label_id=world.other.label.pk)),
        ("post", url("label_delete", project_id=world.demo.project.pk, label_id=world.other.label.pk)),
    ]
    for method, target in label_routes(world, side=world.other) + mixed:
        assert getattr(manager, method)(target, harmful_post(world)).status_code == 404, target
    assert_nothing_changed(world)


def test_it_answers_404_for_a_label_of_a_sibling_project(world: World) -> None:
    sibling = LabelFactory(project=ProjectFactory(organization=world.demo.org))
    make_image(sibling.project)
    target = url("label_delete", project_id=world.demo.project.pk, label_id=sibling.pk)
    assert client_for(world.manager).post(target).status_code == 404
    assert Label.objects.filter(pk=sibling.pk).exists()
