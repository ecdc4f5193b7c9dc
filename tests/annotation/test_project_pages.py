"""Project pages: the dashboard's project list with progress, create / edit / delete of a project,
who may do which, and other organisations' projects answering 404."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotation.models import Annotation, Label, MediaItem, Project
from tests.conftest import World
from tests.factories import LabelFactory, ProjectFactory, make_image


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, org: str = "demo-lab", **kwargs: Any) -> str:
    return reverse(name, kwargs={"org_slug": org, **kwargs})


def text_of(response: Any) -> str:
    """The page's visible text with runs of white space collapsed, for phrase assertions."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def fill(project: Project, *, items: int, done: int, labels: dict[str, int]) -> None:
    """Give ``project`` items (the first ``done`` of them finished) and labels with that many objects."""
    media = [make_image(project, name=f"p{n}.png") for n in range(items)]
    MediaItem.objects.filter(pk__in=[item.pk for item in media[:done]]).update(done_at=timezone.now())
    for name, objects in labels.items():
        label = LabelFactory(project=project, name=name)
        for n in range(objects):
            Annotation.objects.create(media=media[n % len(media)], label=label)


# --- the dashboard's project list ---------------------------------------------------------------


def test_it_shows_each_projects_progress_and_objects_per_label(world: World) -> None:
    project = ProjectFactory(organization=world.demo.org, name="Street scenes")
    fill(project, items=3, done=2, labels={"car": 3, "person": 1, "tree": 0})
    page = text_of(client_for(world.annotator).get(url("dashboard")))
    tile = page[page.index("Street scenes") :]
    assert "2/3 items done" in tile
    assert "3 items · 3 labels · images" in tile
    # Labels with objects, in label order, with their counts; a label without objects is left out.
    assert re.search(r"car 3 person 1 ", tile)
    assert "tree 0" not in tile


def test_it_pluralises_the_counts_of_one_item_and_one_label(world: World) -> None:
    page = text_of(client_for(world.manager).get(url("dashboard")))
    assert "0/1 item done" in page
    assert "1 item · 1 label · images" in page
    empty = ProjectFactory(organization=world.demo.org, media_type=Project.MediaType.BOTH)
    page = text_of(client_for(world.manager).get(url("dashboard")))
    assert f"{empty.name}" in page
    assert "0 items · 0 labels · images and videos" in page


def test_it_lists_only_the_organisations_projects(world: World) -> None:
    response = client_for(world.outsider).get(url("dashboard", org="other-lab"))
    assert response.status_code == 200
    assert world.other.project.name in response.content.decode()
    assert [p.pk for p in response.context["projects"]] == [world.other.project.pk]
    assert client_for(world.outsider).get(url("dashboard")).status_code == 404


def test_it_lists_the_projects_by_name(world: World) -> None:
    zebra = ProjectFactory(organization=world.demo.org, name="Zebras")
    fill(zebra, items=1, done=0, labels={"zebra": 1})
    ProjectFactory(organization=world.demo.org, name="Antelopes")
    response = client_for(world.annotator).get(url("dashboard"))
    names = [project.name for project in response.context["projects"]]
    assert names == ["Antelopes", world.demo.project.name, "Zebras"]
    page = response.content.decode()
    assert page.index("Antelopes") < page.index(world.demo.project.name) < page.index("Zebras")


def test_it_offers_new_project_to_managers_only(world: World) -> None:
    create = url("project_create")
    for user in (world.owner, world.manager):
        assert create in client_for(user).get(url("dashboard")).content.decode()
    for user in (world.reviewer, world.annotator):
        assert create not in client_for(user).get(url("dashboard")).content.decode()


def test_it_lists_projects_in_the_same_number_of_queries_however_many(
    world: World, django_assert_num_queries: Any
) -> None:
    client = client_for(world.manager)
    client.get(url("dashboard"))
    with CaptureQueriesContext(connection) as one_project:
        client.get(url("dashboard"))
    for n in range(4):
        fill(ProjectFactory(organization=world.demo.org), items=2, done=1, labels={f"a{n}": 2, f"b{n}": 1})
    with django_assert_num_queries(len(one_project.captured_queries)):
        response = client.get(url("dashboard"))
    assert len(response.context["projects"]) == 5


# --- create ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", ["images", "videos", "both"])
def test_it_creates_a_project_of_each_media_type(world: World, media_type: str) -> None:
    response = client_for(world.manager).post(
        url("project_create"), {"name": "Birds", "description": "Every bird.", "media_type": media_type}
    )
    project = Project.objects.get(organization=world.demo.org, name="Birds")
    assert (project.media_type, project.description, project.created_by) == (media_type, "Every bird.", world.manager)
    # Labels come next.
    assert response.status_code == 302
    assert response["Location"] == url("label_manager", project_id=project.pk)


def test_it_offers_the_three_media_types_on_the_form(world: World) -> None:
    response = client_for(world.owner).get(url("project_create"))
    assert response.status_code == 200
    page = response.content.decode()
    for value in ("images", "videos", "both"):
        assert f'value="{value}"' in page
    assert "Images and videos" in page


def test_it_refuses_a_project_without_a_name_or_of_an_unknown_media_type(world: World) -> None:
    client = client_for(world.manager)
    before = Project.objects.count()
    response = client.post(url("project_create"), {"name": "", "media_type": "images"})
    assert response.status_code == 200
    assert response.context["form"].errors["name"] == ["This field is required."]
    response = client.post(url("project_create"), {"name": "Audio", "media_type": "audio"})
    assert "media_type" in response.context["form"].errors
    assert Project.objects.count() == before


def test_it_refuses_a_second_project_of_the_same_name_in_the_organisation(world: World) -> None:
    name = world.demo.project.name
    response = client_for(world.manager).post(url("project_create"), {"name": name, "media_type": "images"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Project.objects.filter(organization=world.demo.org, name=name).count() == 1
    # Another organisation may use the name.
    client_for(world.outsider).post(url("project_create", org="other-lab"), {"name": "Birds", "media_type": "images"})
    client_for(world.manager).post(url("project_create"), {"name": "Birds", "media_type": "images"})
    assert Project.objects.filter(name="Birds").count() == 2


# --- edit ------------------------------------------------------------------------------------------


def test_it_edits_a_project_from_a_form_filled_with_its_values(world: World) -> None:
    project = world.demo.project
    client = client_for(world.owner)
    form = client.get(url("project_edit", project_id=project.pk))
    assert form.status_code == 200
    assert form.context["form"]["name"].value() == project.name
    assert form.context["form"]["media_type"].value() == "images"
    response = client.post(
        url("project_edit", project_id=project.pk), {"name": "Renamed", "description": "New.", "media_type": "both"}
    )
    assert response.status_code == 302
    assert response["Location"] == project.get_absolute_url()
    project.refresh_from_db()
    assert (project.name, project.description, project.media_type) == ("Renamed", "New.", "both")


def test_it_refuses_a_media_type_that_excludes_media_already_in_the_project(world: World) -> None:
    project = world.demo.project  # holds one image
    response = client_for(world.manager).post(
        url("project_edit", project_id=project.pk), {"name": "Renamed", "media_type": "videos"}
    )
    assert response.status_code == 200
    assert "The project already holds media of another type." in response.content.decode()
    # Nothing saved, and the page still names the project by its stored name.
    project.refresh_from_db()
    assert (project.name, project.media_type) == (world.demo.project.name, "images")
    assert response.context["project"].name == project.name


# --- delete ----------------------------------------------------------------------------------------


def test_it_deletes_an_empty_project_without_asking_for_its_name(world: World) -> None:
    empty = ProjectFactory(organization=world.demo.org)
    LabelFactory(project=empty)
    client = client_for(world.manager)
    page = client.get(url("project_delete", project_id=empty.pk))
    assert page.status_code == 200
    assert "The project holds no media." in page.content.decode()
    assert 'name="confirm_name"' not in page.content.decode()
    response = client.post(url("project_delete", project_id=empty.pk))
    assert response.status_code == 302
    assert response["Location"] == url("dashboard")
    assert not Project.objects.filter(pk=empty.pk).exists()
    assert not Label.objects.filter(project_id=empty.pk).exists()


def test_it_asks_for_the_name_of_a_project_that_holds_media(world: World) -> None:
    make_image(world.demo.project, name="second.png")
    page = client_for(world.manager).get(url("project_delete", project_id=world.demo.project.pk))
    text = text_of(page)
    assert "This deletes 2 items with their annotations" in text
    assert 'name="confirm_name"' in page.content.decode()


@pytest.mark.parametrize("typed", ["", "wrong name"])
def test_it_refuses_to_delete_a_project_with_media_without_its_exact_name(world: World, typed: str) -> None:
    project = world.demo.project
    response = client_for(world.manager).post(url("project_delete", project_id=project.pk), {"confirm_name": typed})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors
    page = response.content.decode()
    message = " ".join(e for errs in errors.values() for e in errs)
    assert message in page.replace("&#x27;", "'").replace("&quot;", '"')
    assert "name" in message
    if typed:
        assert "does not match" in message
    assert Project.objects.filter(pk=project.pk).exists()
    assert MediaItem.objects.filter(pk=world.demo.media.pk).exists()


def test_it_deletes_a_project_with_everything_in_it_once_named(world: World) -> None:
    project = world.demo.project
    Annotation.objects.create(media=world.demo.media, label=world.demo.label)
    response = client_for(world.owner).post(
        url("project_delete", project_id=project.pk), {"confirm_name": project.name}, follow=True
    )
    assert response.redirect_chain[-1][0] == url("dashboard")
    assert f"Project “{project.name}” deleted." in response.content.decode()
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not MediaItem.objects.filter(project_id=project.pk).exists()
    assert not Annotation.objects.filter(label_id=world.demo.label.pk).exists()
    # The other organisation's project is untouched.
    assert Project.objects.filter(pk=world.other.project.pk).exists()


# --- who may -------------------------------------------------------------------------------------------


def project_urls(world: World) -> list[str]:
    return [
        url("project_create"),
        url("project_edit", project_id=world.demo.project.pk),
        url("project_delete", project_id=world.demo.project.pk),
    ]


def test_it_forbids_annotators_and_reviewers_to_create_edit_or_delete(world: World) -> None:
    project = world.demo.project
    for user in (world.annotator, world.reviewer):
        client = client_for(user)
        for target in project_urls(world):
            assert client.get(target).status_code == 403
            response = client.post(target, {"name": "Mine", "media_type": "images", "confirm_name": project.name})
            assert response.status_code == 403
            assert "Your role in this organisation does not allow this." in response.content.decode()
    project.refresh_from_db()
    assert project.name == world.demo.project.name
    assert not Project.objects.filter(name="Mine").exists()


def test_it_answers_404_to_an_outsider_on_every_project_page(world: World) -> None:
    outsider = client_for(world.outsider)
    demo, other = world.demo.project, world.other.project
    changing = [
        *project_urls(world),
        # Demo Lab's project through the outsider's own organisation.
        url("project_edit", org="other-lab", project_id=demo.pk),
        url("project_delete", org="other-lab", project_id=demo.pk),
        # Their own project through Demo Lab.
        url("project_edit", project_id=other.pk),
        url("project_delete", project_id=other.pk),
    ]
    viewing = [url("project_detail", project_id=demo.pk), url("project_detail", org="other-lab", project_id=demo.pk)]
    for target in changing + viewing:
        assert outsider.get(target).status_code == 404, target
    for target in changing:
        response = outsider.post(target, {"name": "X", "media_type": "images", "confirm_name": demo.name})
        assert response.status_code == 404, target
    assert Project.objects.filter(pk=demo.pk, name=demo.name).exists()
    assert not Project.objects.filter(name="X").exists()


def test_it_answers_404_to_a_manager_for_another_organisations_project(world: World) -> None:
    manager = client_for(world.manager)
    other = world.other.project
    for name in ("project_detail", "project_edit", "project_delete"):
        assert manager.get(url(name, project_id=other.pk)).status_code == 404
    assert manager.post(url("project_delete", project_id=other.pk), {"confirm_name": other.name}).status_code == 404
    assert Project.objects.filter(pk=other.pk).exists()


def test_it_sends_an_anonymous_visitor_to_sign_in(world: World) -> None:
    for target in project_urls(world):
        response = Client().get(target)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
