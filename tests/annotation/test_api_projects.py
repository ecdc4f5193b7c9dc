"""REST API: projects (list with progress, create, read, change, delete)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.utils import timezone
from rest_framework.pagination import PageNumberPagination
from rest_framework.test import APIClient

from annotation.models import Project
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import LabelFactory, ProjectFactory, make_image


def test_it_lists_the_organisations_projects_with_their_progress(world: World) -> None:
    world.demo.media.done_at = timezone.now()
    world.demo.media.save(update_fields=["done_at"])
    response = token_client(world.annotator).get(api_url("api_project_list"))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    [project] = body["results"]
    assert project["id"] == world.demo.project.pk
    assert (project["media_count"], project["done_count"], project["label_count"]) == (1, 1, 1)
    assert project["media_type"] == "images"


@pytest.mark.parametrize("projects", [1, 5])
def test_it_lists_projects_in_a_fixed_number_of_queries(
    world: World, django_assert_num_queries: Any, projects: int
) -> None:
    for _ in range(projects - 1):
        project = ProjectFactory(organization=world.demo.org)
        LabelFactory(project=project)
        make_image(project)
    client = token_client(world.manager)
    # token + membership, then the page's count and its rows
    with django_assert_num_queries(4):
        response = client.get(api_url("api_project_list"))
    assert len(response.json()["results"]) == projects


def test_it_pages_long_lists(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    for n in range(3):
        ProjectFactory(organization=world.demo.org, name=f"zz {n}")
    client = token_client(world.manager)
    first = client.get(api_url("api_project_list")).json()
    assert (first["count"], len(first["results"]), first["previous"]) == (4, 2, None)
    second = client.get(first["next"]).json()
    assert [p["name"] for p in second["results"]] == ["zz 1", "zz 2"]
    assert second["next"] is None
    assert client.get(api_url("api_project_list"), {"page": 3}).status_code == 404


def test_it_creates_a_project_for_a_manager(world: World) -> None:
    response = token_client(world.manager).post(
        api_url("api_project_list"), {"name": "Cells", "description": "Nuclei", "media_type": "both"}, format="json"
    )
    assert response.status_code == 201, response.json()
    project = Project.objects.get(pk=response.json()["id"])
    assert (project.organization, project.name, project.media_type, project.created_by) == (
        world.demo.org,
        "Cells",
        "both",
        world.manager,
    )
    assert response.json()["media_count"] == 0


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_it_refuses_project_creation_below_manager(world: World, role: str) -> None:
    response = token_client(getattr(world, role)).post(api_url("api_project_list"), {"name": "Cells"}, format="json")
    assert response.status_code == 403
    assert not Project.objects.filter(name="Cells").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({}, "name"),
        ({"name": "Cells", "media_type": "audio"}, "media_type"),
    ],
)
def test_it_refuses_a_bad_project(world: World, body: dict, field: str) -> None:
    response = token_client(world.manager).post(api_url("api_project_list"), body, format="json")
    assert response.status_code == 400
    assert response.json()[field]
    assert Project.objects.for_org(world.demo.org).count() == 1


def test_it_refuses_a_second_project_of_the_same_name(world: World) -> None:
    response = token_client(world.manager).post(
        api_url("api_project_list"), {"name": world.demo.project.name}, format="json"
    )
    assert response.status_code == 400
    assert "already exists" in response.json()["detail"]
    assert Project.objects.for_org(world.demo.org).count() == 1


def test_it_lets_another_organisation_use_the_same_name(world: World) -> None:
    response = token_client(world.outsider).post(
        api_url("api_project_list", org_slug="other-lab"), {"name": world.demo.project.name}, format="json"
    )
    assert response.status_code == 201


def test_it_describes_one_project(world: World) -> None:
    body = token_client(world.annotator).get(api_url("api_project_detail", project_id=world.demo.project.pk)).json()
    assert body["name"] == world.demo.project.name
    assert body["media_count"] == 1
    assert body["label_count"] == 1


def test_it_changes_a_project(world: World) -> None:
    url = api_url("api_project_detail", project_id=world.demo.project.pk)
    response = token_client(world.manager).patch(url, {"description": "New text"}, format="json")
    assert response.status_code == 200
    assert response.json()["description"] == "New text"
    world.demo.project.refresh_from_db()
    assert world.demo.project.description == "New text"


def test_it_refuses_a_media_type_that_excludes_the_projects_media(world: World) -> None:
    url = api_url("api_project_detail", project_id=world.demo.project.pk)
    response = token_client(world.manager).patch(url, {"media_type": "videos"}, format="json")
    assert response.status_code == 400
    assert response.json()["media_type"] == ["The project already holds media of another type."]
    world.demo.project.refresh_from_db()
    assert world.demo.project.media_type == "images"


def test_it_refuses_changes_below_manager(world: World) -> None:
    url = api_url("api_project_detail", project_id=world.demo.project.pk)
    response = token_client(world.reviewer).patch(url, {"name": "Mine"}, format="json")
    assert response.status_code == 403
    world.demo.project.refresh_from_db()
    assert world.demo.project.name != "Mine"


def test_it_asks_for_the_name_before_deleting_a_project_with_media(world: World) -> None:
    url = api_url("api_project_detail", project_id=world.demo.project.pk)
    client = token_client(world.manager)
    for query in ["", "?confirm=wrong"]:
        response = client.delete(url + query)
        assert response.status_code == 400
        assert response.json()["code"] == "confirm"
        assert "name" in response.json()["detail"]
    assert Project.objects.filter(pk=world.demo.project.pk).exists()

    response = client.delete(f"{url}?{urlencode({'confirm': world.demo.project.name})}")
    assert response.status_code == 204
    assert not Project.objects.filter(pk=world.demo.project.pk).exists()


def test_it_deletes_an_empty_project_without_asking(world: World) -> None:
    project = ProjectFactory(organization=world.demo.org)
    response = token_client(world.owner).delete(api_url("api_project_detail", project_id=project.pk))
    assert response.status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()


def test_it_refuses_deletion_below_manager(world: World) -> None:
    project = ProjectFactory(organization=world.demo.org)
    response = token_client(world.reviewer).delete(api_url("api_project_detail", project_id=project.pk))
    assert response.status_code == 403
    assert Project.objects.filter(pk=project.pk).exists()


def test_it_answers_404_for_another_organisations_project(world: World) -> None:
    client = token_client(world.outsider)
    url = api_url("api_project_detail", org_slug="other-lab", project_id=world.demo.project.pk)
    assert client.get(url).status_code == 404
    assert client.patch(url, {"name": "x"}, format="json").status_code == 404
    assert client.delete(f"{url}?{urlencode({'confirm': world.demo.project.name})}").status_code == 404
    assert Project.objects.filter(pk=world.demo.project.pk, name=world.demo.project.name).exists()


def test_it_answers_401_without_credentials_or_with_a_bad_token(world: World) -> None:
    anonymous = APIClient()
    assert anonymous.get(api_url("api_project_list")).status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert bad.get(api_url("api_project_list")).status_code == 401


def test_it_works_with_the_session_too(world: World) -> None:
    client = APIClient()
    client.force_login(world.annotator)
    assert client.get(api_url("api_project_list")).status_code == 200
